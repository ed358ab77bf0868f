#!/bin/sh
# bench/plot.sh DATA PNG — renders the latency-vs-in-flight sweep written by
# bench/run.sh (columns: inflight raw_cps raw_p50 raw_p99 ember_cps ember_p50
# ember_p99; "-" where a peer did not run) as a gnuplot PNG.
set -eu
dat=$1
png=$2
title=$(sed -n '1s/^# *//p' "$dat")
gnuplot <<GP
set terminal png size 960,600 font ",11"
set output "$png"
set datafile missing "-"
set title "$title"
set xlabel "calls in flight (one connection)"
set ylabel "latency (µs)"
set logscale x 2
set logscale y 10
set grid xtics ytics mytics
set key top left
plot "$dat" using 1:3 with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "raw p50", \
     "$dat" using 1:4 with linespoints lw 2 pt 5 dt 2 lc rgb "#1f77b4" title "raw p99", \
     "$dat" using 1:6 with linespoints lw 2 pt 7 lc rgb "#d62728" title "ember p50", \
     "$dat" using 1:7 with linespoints lw 2 pt 5 dt 2 lc rgb "#d62728" title "ember p99"
GP
echo "bench-plot: wrote $png"
