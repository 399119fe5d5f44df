# Helpers shared by the bench scripts (sourced, not run).

# stats [DIGITS]: min / median / max of the numbers on stdin.
stats() {
  sort -g | awk -v d="${1:-0}" '{v[NR]=$1} END {f="%." d "f"; printf "min " f " / median " f " / max " f,
    v[1], (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2), v[NR]}'
}
# median: the median of the numbers on stdin.
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
# field NAME: the value of `NAME=<number>` in each line on stdin.
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
