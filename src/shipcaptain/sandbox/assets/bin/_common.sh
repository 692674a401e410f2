# Shared by the sandbox stand-ins. Each stand-in plays a production tool that the demo
# cannot reach on a laptop; it says so in its output ("[sandbox]") and keeps what it did
# in $SHIPCAPTAIN_SANDBOX_STATE so later commands (and people) can check it.
state="${SHIPCAPTAIN_SANDBOX_STATE:?the sandbox stand-ins run only inside shipcaptain demo}"
mkdir -p "$state"
say() { echo "[sandbox $(basename "$0")] $*"; }
