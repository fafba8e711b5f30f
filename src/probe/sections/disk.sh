# disk: bytes and inodes where the data lives, under `timeout`: a wedged NFS
# mount costs this section, not the tick. GNU df gives both in one call
# (`--output`); elsewhere (busybox) `df -P` and `df -P -i`.
gp_disk() {
  [ -n "$GP_DATA_MOUNT" ] || { echo "d none"; return 0; }
  gp_b=$($GP_TO df -k --output=size,used,avail,pcent,itotal,iused,iavail,ipcent -- "$GP_DATA_MOUNT" 2>/dev/null </dev/null)
  gp_brc=$?
  # busybox's timeout says 143, GNU's 124 (137 after its KILL)
  case "$gp_brc" in 137 | 143) gp_brc=124 ;; esac
  # a mount that wedged df once wedges it again: one timeout, not two
  [ "$gp_brc" = 124 ] && return 124
  if [ "$gp_brc" = 0 ] && [ -n "$gp_b" ]; then echo "o ${gp_b##*"
"}"; return 0; fi
  gp_b=$($GP_TO df -P -- "$GP_DATA_MOUNT" 2>/dev/null </dev/null)
  gp_brc=$?
  case "$gp_brc" in 137 | 143) gp_brc=124 ;; esac
  gp_ib=""
  [ "$gp_brc" = 124 ] || gp_ib=$($GP_TO df -P -i -- "$GP_DATA_MOUNT" 2>/dev/null </dev/null)
  gp_b=${gp_b##*"
"}; gp_ib=${gp_ib##*"
"}
  [ -n "$gp_b" ] && echo "b $gp_b"
  [ -n "$gp_ib" ] && echo "i $gp_ib"
  [ "$gp_brc" = 124 ] && return 124
  [ -n "$gp_b" ] || { echo "d missing"; return 1; }
}
