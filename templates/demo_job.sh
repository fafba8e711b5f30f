# gpupatrol demo job: a stand-in for `python train.py`.
# usage: sh demo_job.sh DIR MODE STEPS PAUSE   (MODE: finish | crash)
dir=$1; mode=$2; steps=$3; pause=$4
echo $$ >"$dir/job.pid"
mkdir -p "$dir/ckpt"
echo "config: {lr: 0.0003, batch_size: 64, on_error: skip, log_errors: true}" >>"$dir/train.log"
i=1
while [ "$i" -le "$steps" ]; do
  sleep "$pause"
  echo "waiting for data loader..." >>"$dir/train.log"
  loss=$(awk -v i="$i" "BEGIN { printf \"%.3f\", 2.5 / i }")
  echo "Epoch $i/$steps loss $loss" >>"$dir/train.log"
  : >"$dir/ckpt/epoch_$i.pt"
  if [ "$mode" = crash ] && [ "$i" -eq 3 ]; then
    cat >>"$dir/train.log" <<'TRACEBACK'
Traceback (most recent call last):
  File "/workspace/train.py", line 212, in <module>
    main()
  File "/workspace/train.py", line 187, in main
    loss = model(batch).loss
  File "/usr/lib/python3/dist-packages/torch/nn/modules/module.py", line 1751, in _wrapped_call_impl
    return self._call_impl(*args, **kwargs)
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.15 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 78.08 GiB memory in use.
TRACEBACK
    exit 1
  fi
  i=$((i + 1))
done
echo "Training completed" >>"$dir/train.log"
touch "$dir/DONE"
