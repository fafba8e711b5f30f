# Helpers every section uses. The probe is ONE shell: sections are functions
# run in it, so they share these and their variables (each section's own are
# prefixed with its name). Builtins wherever they do the job: on a box every
# fork counts.

# Size, inode and mtime of a file in one stat (gp_fsize gp_fino gp_fmtime);
# wc/date where stat differs (or is missing). 1 when the file is gone. With
# $2 = to, the stat runs under the section timeout (the first touch of a file
# that may sit on a dead network mount): 124 when it did not answer.
gp_fstat() {
  gp_fsize=""; gp_fino=0; gp_fmtime=""
  case "${2:-}" in
    to)
      gp_fs=$(${GP_TO:-} stat -c "%s %i %Y" -- "$1" 2>/dev/null)
      case $? in 124 | 137 | 143) [ -n "${GP_TO:-}" ] && return 124 ;; esac
      ;;
    follow) gp_fs=$(stat -L -c "%s %i %Y" -- "$1" 2>/dev/null) || gp_fs="" ;;
    *) gp_fs=$(stat -c "%s %i %Y" -- "$1" 2>/dev/null) || gp_fs="" ;;
  esac
  # shellcheck disable=SC2086
  set -- "$1" $gp_fs
  case "${2:-}${3:-}${4:-}" in
    '' | *[!0-9]*)
      [ -e "$1" ] || return 1
      # never open what is not a regular file (a FIFO blocks, a folder fails)
      gp_fmtime=$(date -r "$1" +%s 2>/dev/null)
      [ -f "$1" ] || return 1
      gp_fsize=$(wc -c <"$1" 2>/dev/null | tr -d " ")
      ;;
    *) gp_fsize=$2; gp_fino=$3; gp_fmtime=$4 ;;
  esac
  [ -n "$gp_fsize" ]
}

# Value of KEY ($2) in a "KEY VALUE" file ($1), in gp_kv.
gp_keyval() {
  gp_kv=""
  while read -r gp_k gp_v _; do
    [ "$gp_k" = "$2" ] && { gp_kv=$gp_v; return 0; }
  done <"$1" 2>/dev/null
  return 0
}
gp_first_line() {
  gp_fl=""
  read -r gp_fl 2>/dev/null <"$1" || :
}
# When the process started, in epoch seconds by the box's clock (empty if
# unknown): never later than the true start (its age is rounded up), at most
# two seconds earlier.
gp_started() {
  gp_started_at=""
  gp_stat "$1" || return 0
  [ -n "${GP_UPTIME_CS:-}" ] && [ -n "$gp_st_start" ] || return 0
  gp_age=$((GP_UPTIME_CS - gp_st_start))
  # a virtualised /proc/uptime (lxcfs) makes a process older than the box: unknown
  [ "$gp_age" -ge 0 ] || return 0
  gp_started_at=$((GP_NOW - (gp_age + 99) / 100))
}

# Is $1 the probe itself (a descendant of the probe's shell) or its parent?
gp_is_ours() {
  [ "$1" = "$GP_MAIN_PARENT" ] && return 0
  gp_x=$1; gp_n=0
  while [ -n "$gp_x" ] && [ "$gp_x" -gt 1 ] && [ "$gp_n" -lt 64 ]; do
    [ "$gp_x" = "$GP_MAIN_PID" ] && return 0
    gp_stat "$gp_x" || return 1
    gp_x=$gp_st_ppid; gp_n=$((gp_n + 1))
  done
  return 1
}

# Threads of $1 and its descendants (a pane's shell runs python, python runs workers).
gp_tree_threads() {
  gp_tree_pids "$1"
  gp_threads=0; gp_seen=0
  for gp_p in $gp_tree; do
    gp_stat "$gp_p" || continue
    gp_threads=$((gp_threads + ${gp_st_threads:-0})); gp_seen=$((gp_seen + 1))
  done
}

# The first $2 bytes of file $1 as hex (a fingerprint), in gp_fpv. A
# copytruncate that grows past the old offset between two ticks keeps the
# inode and a plausible size; its first bytes change.
gp_fp() {
  gp_fpv=""
  [ "$2" -gt 0 ] || return 0
  gp_fpv=$(od -An -N "$2" -tx1 -- "$1" 2>/dev/null)
  # shellcheck disable=SC2086
  set -- $gp_fpv
  gp_fpv=$*
}

# Was file $1 (size gp_fsize, inode gp_fino) replaced under the cursor
# (offset $2, inode $3, fingerprint $4 of its first $5 bytes)? gp_replaced=1,
# and gp_fpv / gp_fplen for the next cursor (the first 64 bytes, or all of a
# shorter file).
gp_cursor() {
  gp_replaced=0
  if [ "$gp_fino" != "${3:-0}" ] || [ "$gp_fsize" -lt "${2:-0}" ]; then gp_replaced=1; fi
  gp_fplen=64; [ "$gp_fsize" -lt 64 ] && gp_fplen=$gp_fsize
  gp_fpv=""
  if [ "$gp_replaced" = 0 ] && [ -n "${4:-}" ] && [ "${5:-0}" -gt 0 ]; then
    gp_fp "$1" "$5"
    [ "$gp_fpv" = "$4" ] || gp_replaced=1
    [ "$5" = "$gp_fplen" ] && return 0
  fi
  gp_fp "$1" "$gp_fplen"
}

# Bytes [$2, $3) of file $1, as lines for awk: a `\r` (a progress bar's
# redraw) ends a line as `\n` does, a NUL too (one byte for one: offsets stay
# exact), and a final \034 marks the end, so awk can tell whether the last
# line was finished (the mark alone) or not (text, then the mark).
gp_region() {
  { tail -c +$(($2 + 1)) -- "$1" 2>/dev/null | head -c $(($3 - $2)); printf "\034"; } | tr "\r\000" "\n\n"
}

# Literal text $6 in file $1 from the cursor (offset $2, inode $3,
# fingerprint $4 of $5 bytes): sets gp_hit (1/0), gp_next (the next tick's
# offset: the start of an unfinished last line, so text half-written now —
# "Training comp" — is read whole then), gp_fino, gp_fpv, gp_fplen, gp_replaced.
gp_scan_text() {
  gp_hit=0; gp_next=0
  gp_fstat "$1" || return 1
  gp_start=$2
  gp_cursor "$1" "$2" "$3" "$4" "$5"
  [ "$gp_replaced" = 1 ] && gp_start=0
  if [ $((gp_fsize - gp_start)) -gt "$GP_SCAN_MAX" ]; then gp_start=$((gp_fsize - GP_SCAN_MAX)); fi
  gp_r=$(gp_region "$1" "$gp_start" "$gp_fsize" | GP_TEXT=$6 awk "
    BEGIN { p = ENVIRON[\"GP_TEXT\"]; h = 0; l = 0
            ESC = sprintf(\"%c\", 27); BEL = sprintf(\"%c\", 7)
            CSI = ESC \"[[][0-9;?]*[ -/]*[@-~]\"; OSC = ESC \"[]][^\" BEL ESC \"]*\" BEL }
    { l = length(\$0); s = \$0
      # the text as a person reads it: without a coloured logger's escapes
      if (index(s, ESC)) { gsub(CSI, \"\", s); gsub(OSC, \"\", s) } }
    index(s, p) { h = 1 }
    END { print h, l - 1 }")
  gp_hit=${gp_r% *}; gp_last=${gp_r#* }
  gp_next=$gp_fsize
  # the unfinished last line is read again next time (not when it is huge)
  if [ "${gp_last:-0}" -gt 0 ] && [ "$gp_last" -lt "${GP_LINE_CAP:-4096}" ]; then gp_next=$((gp_fsize - gp_last)); fi
  [ "$gp_next" -ge "$gp_start" ] || gp_next=$gp_start
}
