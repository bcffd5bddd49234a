module mltrain/bench/wsclient

go 1.24
