"""Component ids of the app shell and the live machinery, as constants."""

URL = "app-url"
SCREEN = "app-screen"
SCREEN_SHOWN = "app-screen-shown"  # the path+search the screen shows when drawn in place
TOUR = "app-tour"
POLL = "live-poll"
POLL_VERSION = "live-poll-version"
POLL_VM = "live-poll-vm"
POLL_SINK = "live-poll-sink"
VC_OVERLAY = "vc-overlay"
VC_CALL = "vc-call-state"
VC_END = "vc-end"
VC_REQUEST = "vc-request"
VC_TIER = "vc-tier"  # pattern-matching type: {"type": VC_TIER, "code": code}
VC_BODY = "vc-body"
VC_OPEN = "vc-open-url"
VC_SINK = "vc-sink"
VC_LIVE_SINK = "vc-live-sink"  # output of the clientside hand-over to assets/vc.js
VC_CALL_BTN = "vc-call"  # pattern-matching type: {"type": VC_CALL_BTN, "code": code}
VC_GROUP_BTN = "vc-group"
