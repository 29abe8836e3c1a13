"""``python -m tiers.platforms.local ROOT`` runs the supervisor for a project's state ROOT."""

import sys
from pathlib import Path

from tiers.platforms.local.supervisor import serve

serve(Path(sys.argv[1]))
