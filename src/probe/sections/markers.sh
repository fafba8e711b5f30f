# markers: the done marker (exists? its mtime, by the box's clock) and the
# done text in the shared master log, scanned from the last tick's cursor.
gp_markers() {
  if [ -n "$GP_DONE_MARKER" ]; then
    if [ -e "$GP_DONE_MARKER" ]; then
      echo "done_marker=yes"
      gp_fstat "$GP_DONE_MARKER" && echo "done_marker_mtime=$gp_fmtime"
    else
      echo "done_marker=no"
    fi
  fi
  if [ -n "$GP_MASTER_LOG" ] && [ -n "$GP_DONE_PATTERN" ]; then
    if [ ! -r "$GP_MASTER_LOG" ]; then echo "master=missing"; return 0; fi
    gp_scan_text "$GP_MASTER_LOG" "${GP_MASTER_OFFSET:-0}" "${GP_MASTER_INODE:-0}" "${GP_MASTER_FP:-}" "${GP_MASTER_FPLEN:-0}" "$GP_DONE_PATTERN" || { echo "master=missing"; return 0; }
    echo "master_size=$gp_next"; echo "master_inode=$gp_fino"; echo "master_fp=$gp_fpv"; echo "master_fp_len=$gp_fplen"
    echo "master_replaced=$gp_replaced"
    echo "master_done=$gp_hit"
  fi
}
