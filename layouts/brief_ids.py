"""Component ids of the tablet briefing view (/brief), as constants (assets/brief.js and the
tests use the same strings)."""

ROOT = "brief-root"
REPLAY = "brief-replay"            # dcc.Store: the replay payload (datasources/replay.py)
REPLAY_REQ = "brief-replay-req"    # dcc.Store: a (re)load request; the server loads the replay
STATE = "brief-state"              # dcc.Store: {mode: live|replay, playing, speed, minute}
SLIDER = "brief-slider"            # dcc.Slider: minutes since the window start
PLAY = "brief-play"
LIVE = "brief-live"                # 回到实时 / Back to live
SPEEDS = (1, 4, 16)
SPEED = "brief-speed-{}"           # one button per speed: SPEED.format(4)
TICK = "brief-tick"                # dcc.Interval: playback frames
SINK = "brief-sink"                # output of the clientside callback (its state, as text)
CHART = "brief-chart-replay"       # the 24 h chart with the replay cursor
DRILL = "brief-drill"              # pattern-matching type: {"type": DRILL, "code": code}
CLOCK = "brief-replay-time"        # the badge's time text
