module libfiber/benchgo

go 1.19
