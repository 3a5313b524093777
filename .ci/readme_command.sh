#!/usr/bin/env bash
# Print the command of README.md's section "## $1" (its first ```bash block, one line).
# Used by .ci/run ("Test it") and by the tests that keep the README's commands working.
set -euo pipefail
readme="$(dirname "$0")/../README.md"
awk -v section="## $1" '
  $0 == section { inside = 1; next }
  inside && /^## / { exit }
  inside && /^```bash$/ { block = 1; next }
  block && /^```$/ { exit }
  block { print; found = 1 }
  END { if (!found) exit 1 }
' "$readme" || { echo "README.md has no \`\`\`bash block under '## $1'" >&2; exit 1; }
