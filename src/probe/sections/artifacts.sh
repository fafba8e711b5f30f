# artifacts: per path, its kind and the number of entries in it (a COUNT,
# never `test -d`), and, when its newest entry is newer than the per-run log
# (a checkpoint written while the log stayed quiet), that entry's mtime (else
# 0). Shell globs and `-nt`: no ls (busybox's lacks -q), no find, a fork only
# for that one mtime, and a file name with a newline counts as one. A folder
# we cannot list is `unreadable`, never a count of 0.
gp_artifacts() {
  gp_i=1
  while [ "$gp_i" -le "${GP_ART_N:-0}" ]; do
    eval "gp_p=\${GP_ART_$gp_i}"
    if [ -d "$gp_p" ] && { [ ! -r "$gp_p" ] || [ ! -x "$gp_p" ]; }; then
      echo "artifact_$gp_i=unreadable 0 0"
    elif [ -d "$gp_p" ]; then
      gp_c=0; gp_new=""
      for gp_f in "$gp_p"/* "$gp_p"/.[!.]* "$gp_p"/..?*; do
        [ -e "$gp_f" ] || [ -L "$gp_f" ] || continue
        gp_c=$((gp_c + 1))
        # a dangling link has no age (and `-nt` against it is false in dash)
        [ -e "$gp_f" ] || continue
        # -nt: in POSIX since 2024, and in dash, bash, ksh, zsh and busybox sh
        # shellcheck disable=SC3013
        if [ -z "$gp_new" ] || [ "$gp_f" -nt "$gp_new" ]; then gp_new=$gp_f; fi
      done
      gp_n=0
      # shellcheck disable=SC3013
      if [ -n "$gp_new" ] && [ -n "$GP_LOG" ] && [ "$gp_new" -nt "$GP_LOG" ]; then
        gp_n=1
        # the age of what a link points at (`-nt` followed it too)
        gp_fstat "$gp_new" follow
        [ -n "$gp_fmtime" ] && gp_n=$gp_fmtime
      fi
      echo "artifact_$gp_i=dir $gp_c $gp_n"
    elif [ -e "$gp_p" ]; then
      echo "artifact_$gp_i=file 1 0"
    else
      echo "artifact_$gp_i=missing 0 0"
    fi
    gp_i=$((gp_i + 1))
  done
}
