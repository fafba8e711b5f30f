# now: the box's clock. Every age gpupatrol reports is measured with it.
gp_now() {
  echo "now=$GP_NOW"
  echo "timeout_cmd=$GP_HAVE_TIMEOUT"
}
