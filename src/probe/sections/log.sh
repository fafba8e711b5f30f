# log: ONE pass over the per-run log. The part new since the last tick's
# offset gives progress candidates (lines holding a literal every progress
# match must contain), the last lines, and the done text; the last
# GP_CRASH_WINDOW bytes (whatever the offset) give crash evidence: the last
# traceback, error-looking lines, the end. Lines are tagged by awk (c, t, x,
# s, e) so log text cannot forge a key; terminal escapes are dropped before
# anything is matched; every line is cut to 1000 bytes in the output (400
# for crash evidence).
gp_log() {
  if [ -z "$GP_LOG" ]; then echo "m log=none"; return 0; fi
  # the first touch under timeout: a log on a dead network mount costs this
  # section, not the probe (after it answered, the builtins below do not hang)
  gp_fstat "$GP_LOG" to
  case $? in
    0) ;;
    124) echo "m log=no-answer"; return 124 ;;
    *) if [ -e "$GP_LOG" ]; then echo "m log=unreadable"; else echo "m log=missing"; fi; return 0 ;;
  esac
  # a FIFO or a device would block the read (or never end): not a log
  if [ ! -f "$GP_LOG" ] || [ ! -r "$GP_LOG" ]; then echo "m log=unreadable"; return 0; fi
  gp_size=$gp_fsize
  gp_start=${GP_LOG_OFFSET:-0}
  gp_rot=0
  gp_cursor "$GP_LOG" "$gp_start" "${GP_LOG_INODE:-0}" "${GP_LOG_FP:-}" "${GP_LOG_FPLEN:-0}"
  if [ "$gp_replaced" = 1 ]; then
    [ "$gp_start" -gt 0 ] && gp_rot=1
    gp_start=0
  fi
  gp_skip=0
  if [ $((gp_size - gp_start)) -gt "$GP_SCAN_MAX" ]; then gp_skip=$((gp_size - GP_SCAN_MAX - gp_start)); gp_start=$((gp_size - GP_SCAN_MAX)); fi
  # Crash evidence: the last GP_CRASH_WINDOW bytes. For a job the alive
  # check just saw running, what is new since the last tick and the last
  # 16 KiB are enough (a traceback while alive is in the new bytes when it
  # is written, and stays in view while the job goes quiet after it); a
  # dead job's whole window is read, to classify it.
  gp_win=$GP_CRASH_WINDOW
  if [ "${GP_ALIVE_STATE:-}" = yes ] && [ "$gp_win" -gt 16384 ]; then
    gp_win=16384
    [ $((gp_size - gp_start)) -gt "$gp_win" ] && gp_win=$((gp_size - gp_start))
    [ "$gp_win" -gt "$GP_CRASH_WINDOW" ] && gp_win=$GP_CRASH_WINDOW
  fi
  # one read from the earlier of the offset and the crash window's start
  gp_from=$((gp_size - gp_win))
  [ "$gp_from" -lt 0 ] && gp_from=0
  [ "$gp_from" -gt "$gp_start" ] && gp_from=$gp_start
  echo "m log=present"
  echo "m size=$gp_size"; echo "m inode=$gp_fino"; echo "m mtime=$gp_fmtime"
  echo "m fp=$gp_fpv"; echo "m fp_len=$gp_fplen"
  echo "m start=$gp_start"; echo "m rotated=$gp_rot"; echo "m skipped=$gp_skip"
  gp_region "$GP_LOG" "$gp_from" "$gp_size" | GP_FROM=$gp_from GP_START=$gp_start GP_WIN=$((gp_size - gp_win)) awk "
    BEGIN { nl = ENVIRON[\"GP_LIT_N\"] + 0; for (i = 1; i <= nl; i++) lit[i] = ENVIRON[\"GP_LIT_\" i]
            dp = ENVIRON[\"GP_DONE_PATTERN\"]; K = 20; T = 12; S = 24; E = 15
            pos = ENVIRON[\"GP_FROM\"] + 0; start = ENVIRON[\"GP_START\"] + 0; win = ENVIRON[\"GP_WIN\"] + 0
            nc = 0; nt = 0; ns = 0; ne = 0; nx = 0; lastprog = 0; n = 0; cn = 0; inx = 0; p1 = \"\"; p2 = \"\"
            # terminal escapes (a coloured logger: rich, loguru) are not text:
            # the literals and crash patterns are matched without them
            ESC = sprintf(\"%c\", 27); BEL = sprintf(\"%c\", 7)
            CSI = ESC \"[[][0-9;?]*[ -/]*[@-~]\"; OSC = ESC \"[]][^\" BEL ESC \"]*\" BEL }
    function keep(s, cap) { return length(s) > cap ? substr(s, 1, cap) : s }
    {
      here = pos; pos += length(\$0) + 1; raw = \$0
      # the mark after the last byte: alone, the last line was finished
      if (index(raw, \"\\034\")) { sub(/\\034\$/, \"\", raw); last = length(raw); if (last == 0) next }
      if (index(raw, ESC)) { gsub(CSI, \"\", raw); gsub(OSC, \"\", raw) }
      if (here >= start) {
        n++
        if (raw != \"\") {
          s = keep(raw, 1000)
          if (dp != \"\" && index(raw, dp)) done = n
          for (i = 1; i <= nl; i++) if (index(raw, lit[i])) { c[nc % K] = n \" \" s; nc++; break }
          t[nt % T] = n \" \" s; nt++
        }
      }
      if (here >= win) {
        cn++; line = keep(raw, 400)
        for (i = 1; i <= nl; i++) if (index(line, lit[i])) { lastprog = cn; break }
        if (line ~ /Traceback \\(most recent call last\\)/) { nx = 0; x[nx++] = p2; x[nx++] = p1; inx = 40 }
        if (inx > 0) { x[nx++] = cn \" \" line; inx-- }
        if (line ~ /[Ee]rror|[Ee]xception|Killed|NCCL|[Nn]a[Nn]|[^a-z]inf[^a-z]|No space left|out of memory|OOM|Segmentation fault|core dumped|Aborted|[Tt]erminated|CANCELLED|PREEMPT|exit code|exitcode|SIG[A-Z]+/) {
          sg[ns % S] = cn \" \" line; ns++ }
        if (line != \"\") { en[ne % E] = cn \" \" line; ne++; p2 = p1; p1 = cn \" \" line }
      }
    }
    END {
      for (i = (nc > K ? nc - K : 0); i < nc; i++) print \"c \" c[i % K]
      for (i = (nt > T ? nt - T : 0); i < nt; i++) print \"t \" t[i % T]
      print \"m lines=\" n; print \"m last_len=\" last + 0; print \"m ends_nl=\" (last > 0 ? 0 : 1)
      if (done) print \"m done_line=\" done
      for (i = 0; i < nx; i++) if (x[i] != \"\") print \"x \" x[i]
      for (i = (ns > S ? ns - S : 0); i < ns; i++) print \"s \" sg[i % S]
      for (i = (ne > E ? ne - E : 0); i < ne; i++) print \"e \" en[i % E]
      print \"m lastprog=\" lastprog; print \"m crash_lines=\" cn
    }"
}
