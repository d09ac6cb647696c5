#!/usr/bin/env bash
# Screenshots of the docs site's home page and the your-own-model guide (docs/images/docs_*.png), taken with a
# headless Chromium from a fresh `mkdocs build`. Needs the docs extra and chromium (Debian: apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
site=$(mktemp -d)
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$site"
for page in "index.html home" "guides/your-own-model/index.html your_own_model"; do
  set -- $page
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1440,1400 \
    --screenshot="docs/images/docs_$2.png" "file://$site/$1" 2>/dev/null
done
rm -rf "$site"
