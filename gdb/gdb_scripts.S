/*
 * gdb/gdb_scripts.S - embeds gdb/libfiber-gdb.py in libfiber's .debug_gdb_scripts section, so that gdb loads the
 * extension together with the library from wherever it is installed (and from the build tree), once auto-loading
 * is allowed for it (`set auto-load safe-path`). The entry is an inline Python script: byte 4
 * (SECTION_SCRIPT_ID_PYTHON_TEXT), the script's name on the first line, the script, a NUL.
 * `strip --strip-debug` removes .debug_* sections, this one included; the installed file remains.
 */
	.pushsection .debug_gdb_scripts, "MS", @progbits, 1
	.byte	4
	.ascii	"libfiber-gdb.py\n"
	.incbin	"libfiber-gdb.py"	/* found through -Wa,-I<source>/gdb */
	.byte	0
	.popsection

	.section .note.GNU-stack,"",@progbits
