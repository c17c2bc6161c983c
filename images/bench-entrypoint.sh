#!/bin/sh
# Entrypoint of the per-mode benchmark images: runs exactly one mode of the benchmark.
#
#   bench-entrypoint MODE [bench options...]
#
# MODE (baseline, async or process) is fixed by each image's ENTRYPOINT and becomes the
# --skip-* flags of the two other modes; every other argument is passed through unchanged to
# `python -m bench.run_parallel_benchmark`. Defaults are added only for options not given:
#   --json-output PATH        $PYRALLEL_RESULTS_DIR/<run id>-<mode>.json, run id = $PYRALLEL_RUN_ID
#                             or the UTC time; one id shared by several containers groups
#                             their files for `python -m bench report`
#   --profile-dir DIR         $PYRALLEL_RESULTS_DIR/profiles (used only with --profile)
#   --bootstrap-servers HOST  $BOOTSTRAP_SERVERS when set (unless --broker-kind is given);
#                             without either, the bench starts an embedded broker in the container
#   --workers N               process mode: the CPUs this container may use (nproc honours
#                             --cpuset-cpus; os.cpu_count() would count every CPU of the host)
# PYRALLEL_RESULTS_DIR defaults to /results, the image's volume; it must be writable (checked
# before the run, exit status 2 otherwise).
set -eu

usage="usage: bench-entrypoint baseline|async|process [bench options...]"
if [ "$#" -lt 1 ]; then
    echo "$usage" >&2
    exit 2
fi
mode=$1
shift

# has_option NAME ARGS...: was NAME given, as "NAME VALUE" or "NAME=VALUE"? Whole names only,
# as the bench's parser accepts no abbreviations (allow_abbrev=False): `--json` is an error there,
# never an option this script would miss and override.
has_option() {
    name=$1
    shift
    for arg in "$@"; do
        case $arg in
            "$name" | "$name"=*) return 0 ;;
        esac
    done
    return 1
}

case $mode in
    baseline) others="async process" ;;
    async) others="baseline process" ;;
    process) others="baseline async" ;;
    *)
        echo "bench-entrypoint: unknown mode '$mode'; $usage" >&2
        exit 2
        ;;
esac
if has_option "--skip-$mode" "$@"; then
    echo "bench-entrypoint: this image runs only the $mode mode; --skip-$mode leaves nothing" \
        "to run (use the image of another mode)" >&2
    exit 2
fi

results_dir=${PYRALLEL_RESULTS_DIR:-/results}
run_id=${PYRALLEL_RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)}
# The bench records this id in the results (metadata.run_id), so the file and its content agree.
export PYRALLEL_RUN_ID="$run_id"

if ! has_option --json-output "$@"; then
    # Before the run, with the advice that fits a container (the bench checks it too, later).
    if [ ! -d "$results_dir" ] || [ ! -w "$results_dir" ]; then
        echo "bench-entrypoint: the results directory $results_dir is not writable by uid" \
            "$(id -u): mount a directory this uid may write (e.g. run with" \
            "-u \"\$(id -u):\$(id -g)\" and your own directory), or give --json-output" >&2
        exit 2
    fi
    set -- "$@" --json-output "$results_dir/$run_id-$mode.json"
fi
if ! has_option --profile-dir "$@"; then
    set -- "$@" --profile-dir "$results_dir/profiles"
fi
if [ -n "${BOOTSTRAP_SERVERS:-}" ] && ! has_option --bootstrap-servers "$@" &&
    ! has_option --broker-kind "$@"; then
    set -- "$@" --bootstrap-servers "$BOOTSTRAP_SERVERS"
fi
if [ "$mode" = process ] && ! has_option --workers "$@"; then
    set -- "$@" --workers "$(nproc)"
fi
for other in $others; do
    set -- "--skip-$other" "$@"
done

exec python -m bench.run_parallel_benchmark "$@"
