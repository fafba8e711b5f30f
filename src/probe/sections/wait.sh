# wait: what `gpupatrol wait` looks for — a marker, or literal text in the
# per-run log from the waiter's own cursor (it starts at 0: text already
# there counts).
gp_wait() {
  if [ -n "$GP_WAIT_MARKER" ]; then
    if [ -e "$GP_WAIT_MARKER" ]; then echo "marker=yes"; else echo "marker=no"; fi
  fi
  [ -n "$GP_WAIT_PATTERN" ] || return 0
  if [ -z "$GP_LOG" ] || [ ! -r "$GP_LOG" ]; then echo "pattern=nolog"; return 0; fi
  gp_scan_text "$GP_LOG" "${GP_WAIT_OFFSET:-0}" "${GP_WAIT_INODE:-0}" "${GP_WAIT_FP:-}" "${GP_WAIT_FPLEN:-0}" "$GP_WAIT_PATTERN" || { echo "pattern=nolog"; return 0; }
  echo "pattern=$gp_hit"; echo "pattern_size=$gp_next"; echo "pattern_inode=$gp_fino"
  echo "pattern_fp=$gp_fpv"; echo "pattern_fp_len=$gp_fplen"
}
