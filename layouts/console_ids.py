"""Component ids of the duty console (/console) and of the tablet's command panel (/brief), as
constants (assets/console.js and the tests use the same strings).

The console and the tablet's panel are built from the same pieces (layouts/console.py) with
the same ids, so one set of callbacks (callbacks/console.py) serves both screens; only one
screen is in the page at a time.
"""

ROOT = "console-root"            # the console screen (data-centre, data-lang)
PANEL = "console-panel"          # the tablet's command panel (same pieces, touch sizes)
TICK = "console-tick"            # dcc.Interval: 1 s, compares the data versions only
VERSION = "console-version"      # dcc.Store: the versions of the centre's sources and the root's
REQUEST = "console-request"      # dcc.Store: {"centre": code} the screen lists (set on render)
STATUS = "console-status"        # dcc.Store: the case filter (contract STATUS_FILTERS)
SELECTED = "console-selected"    # dcc.Store: the eid of the open case card, or None
LISTS_SHOWN = "console-lists-shown"  # dcc.Store: digest of what the lists show (unchanged: not redrawn)
CARD_SHOWN = "console-card-shown"    # dcc.Store: the same for the card
ACTED = "console-acted"          # dcc.Store: bumped after an action (lists refresh at once)
SINK = "console-sink"            # output of the clientside marker of the open case
MESSAGE = "console-message"      # the outcome of the last action (text)
ALERTS = "console-alerts"        # the alert queue
ALERT_COUNT = "console-alert-count"
TABS = "console-tabs"            # the status tabs with their counts
CASES = "console-cases"          # the case list
CARD = "console-card"            # the case card: figures and timeline (re-drawn with the data)
CARD_ACTIONS = "console-card-actions"  # its actions (drawn when a case is opened: a note survives)
PICKER = "console-picker"        # dcc.Dropdown: the centre in view (within the scope)
GROUP = "console-wall-group"     # dcc.Input: the wall group 上墙 drives (default `main`)
WALL_CENTRE = "console-wall-centre"  # button: show the centre in view on the walls
PRODUCERS = "console-producers"  # the producers panel (数据来源): per producer figures
PRODUCER_COUNT = "console-producer-count"
PRODUCERS_TICK = "console-producers-tick"  # dcc.Interval of the producers panel (its own cadence)

# pattern-matching types (the second key names the item)
TAB = "console-tab"              # {"type": TAB, "status": s}
CASE_ROW = "console-case"        # {"type": CASE_ROW, "eid": eid}
ACK = "console-ack"              # {"type": ACK, "alert": alert_id}
ALERT_ROW = "console-alert"      # {"type": ALERT_ROW, "alert": alert_id} (opens its case)
SUPERVISE = "console-supervise"  # {"type": SUPERVISE, "eid": eid}
NOTE = "console-note"            # {"type": NOTE, "eid": eid}: the 督办 note (textarea)
WALL = "console-wall"            # {"type": WALL, "eid": eid}: show the case on the walls
WALL_ALERT = "console-wall-alert"  # {"type": WALL_ALERT, "alert": alert_id}: show the alert

DEFAULT_GROUP = "main"
TICK_MS = 1000
PRODUCERS_TICK_MS = 15_000  # the figures move per aggregator batch; silence is minutes
