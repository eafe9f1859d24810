# The query shapes of the DNS benchmarks (sourced by bench/dns.sh and bench/instructions.sh): the
# dnsperf flags that make each one.
shape_flags() {
  case $1 in
    plain) ;;
    cookie) echo "-E 10:0123456789abcdef" ;;
    ecs) echo "-E 8:00011800c0a801" ;;
    tcp) echo "-m tcp" ;;
  esac
}
