"""Push after a switch: a SIP NOTIFY to each phone so it fetches its file now (issue 18)."""
