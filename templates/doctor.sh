# gpupatrol doctor: what is on the box (read from stdin by sh -s).
gp_to() { if command -v timeout >/dev/null 2>&1; then timeout -k 2 10 "$@"; else "$@"; fi; }
echo "doctor=1"
echo "now=$(date +%s)"
echo "shell=$(readlink "/proc/$$/exe" 2>/dev/null || echo sh)"
for gp_t in $GP_TOOLS; do
  if command -v "$gp_t" >/dev/null 2>&1; then echo "tool $gp_t yes"; else echo "tool $gp_t no"; fi
done
gp_i=1
while [ "$gp_i" -le "${GP_PATH_N:-0}" ]; do
  eval "gp_p=\${GP_PATH_$gp_i}"
  if [ -r "$gp_p" ]; then gp_s=readable
  elif [ -e "$gp_p" ]; then gp_s=unreadable
  elif [ -d "$(dirname -- "$gp_p")" ]; then gp_s=missing
  else gp_s=parent-missing; fi
  echo "path $gp_i $gp_s"
  gp_i=$((gp_i + 1))
done
if [ -n "$GP_DATA_MOUNT" ]; then
  echo "b $(gp_to df -P -- "$GP_DATA_MOUNT" 2>/dev/null </dev/null | tail -n 1)"
  echo "i $(gp_to df -P -i -- "$GP_DATA_MOUNT" 2>/dev/null </dev/null | tail -n 1)"
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpus $(gp_to nvidia-smi -L 2>/dev/null </dev/null | wc -l | tr -d " ")"
fi
echo "doctor_end=1"
