set terminal pngcairo size 1400,700 noenhanced font ",10"
set output "switch_cost.png"
set title "Cost per operation (median ns, log scale; lower is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [1:*]
set ylabel "ns per operation"
set grid ytics
set key outside right top
set datafile missing "NaN"
set xtics nomirror
colors = "#d62728 #7f7f7f #b0b0b0 #dcdcdc #1f77b4 #aec7e8 #9467bd #2ca02c #ff7f0e"
plot for [c=2:10] "switch_cost.dat" using c:xtic(1) title columnheader(c) lc rgb word(colors, c - 1)
