"""Every user-facing string of the wall, in zh-CN (default) and English.

`t(key, lang)` looks a key up (falls back to zh, then to the key itself) and fills `{name}`
placeholders from keyword arguments: `t("ago_s", "en", n=3)` → "3 s ago".
"""

from __future__ import annotations

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"

STRINGS: dict[str, dict[str, str]] = {
    # -- shell / live state (the lead's wall.js reads these from data-i18n) ---------------
    "wall_title": {"zh": "{name} · 平安指挥大屏", "en": "{name} · Command wall"},
    "stale": {"zh": "数据延迟", "en": "Data delayed"},
    "since": {"zh": "自", "en": "since"},
    "ago_s": {"zh": "{n}秒前", "en": "{n} s ago"},
    "live": {"zh": "实时", "en": "Live"},
    "connection_lost": {"zh": "连接中断", "en": "Connection lost"},
    "unknown_centre": {"zh": "未找到中心代码 {code}", "en": "Unknown centre code {code}"},
    "forbidden": {"zh": "无权查看中心 {code}", "en": "You may not view centre {code}"},
    # -- access --------------------------------------------------------------------------
    "login_title": {"zh": "平安指挥大屏 · 登录", "en": "Pingan command wall · Sign in"},
    "login_user": {"zh": "用户名", "en": "User name"},
    "login_password": {"zh": "密码", "en": "Password"},
    "login_submit": {"zh": "登录", "en": "Sign in"},
    "login_failed": {"zh": "用户名或密码错误", "en": "Wrong user name or password"},
    "login_throttled": {"zh": "尝试次数过多，请{s}秒后再试", "en": "Too many attempts: try again in {s} s"},
    "login_busy": {"zh": "服务器繁忙，请稍后再试", "en": "The server is busy: try again in a moment"},
    "login_expired": {"zh": "页面已过期，请重新登录", "en": "The page expired: please sign in again"},
    "logout": {"zh": "退出登录", "en": "Sign out"},
    "logout_confirm": {"zh": "{name}，确认退出登录？", "en": "Sign out {name}?"},
    "demo_badge": {"zh": "演示账号 · 模拟数据", "en": "DEMO · simulated"},
    # figures made by the demo's simulator (`pingan demo`); case handling may run faster
    "demo_data": {"zh": "演示数据", "en": "Demo data"},
    "demo_data_speed": {"zh": "演示数据 · 办理流程加速 ×{speed}",
                        "en": "Demo data · case handling ×{speed}"},
    "role_duty": {"zh": "值班员", "en": "Duty officer"},
    "role_leader": {"zh": "领导", "en": "Leader"},
    "role_admin": {"zh": "管理员", "en": "Administrator"},
    "bad_param": {"zh": "参数错误: {name}", "en": "Bad parameter: {name}"},
    "no_children": {"zh": "无下级中心", "en": "No lower-tier centres"},
    "no_data": {"zh": "暂无数据", "en": "No data"},
    "breadcrumb": {"zh": "层级导航", "en": "Breadcrumb"},
    # -- levels ---------------------------------------------------------------------------
    "level_1": {"zh": "市级", "en": "City"},
    "level_2": {"zh": "区县", "en": "District"},
    "level_3": {"zh": "镇街", "en": "Town/street"},
    "level_4": {"zh": "村社区", "en": "Community/village"},
    "centre_level_1": {"zh": "市级综治中心", "en": "City centre"},
    "centre_level_2": {"zh": "区县综治中心", "en": "District centre"},
    "centre_level_3": {"zh": "镇（街道）综治中心", "en": "Town/street centre"},
    "centre_level_4": {"zh": "社区/村综治中心", "en": "Community/village centre"},
    # -- weekdays (Monday = 0) ------------------------------------------------------------
    "wd_0": {"zh": "星期一", "en": "Mon"},
    "wd_1": {"zh": "星期二", "en": "Tue"},
    "wd_2": {"zh": "星期三", "en": "Wed"},
    "wd_3": {"zh": "星期四", "en": "Thu"},
    "wd_4": {"zh": "星期五", "en": "Fri"},
    "wd_5": {"zh": "星期六", "en": "Sat"},
    "wd_6": {"zh": "星期日", "en": "Sun"},
    # -- header ---------------------------------------------------------------------------
    "index": {"zh": "平安指数", "en": "Ping'an index"},
    "data_age": {"zh": "数据时效", "en": "Data age"},
    # -- panels ---------------------------------------------------------------------------
    "panel_events": {"zh": "事件", "en": "Events"},
    "panel_grids": {"zh": "网格覆盖", "en": "Grid coverage"},
    "panel_cameras": {"zh": "雪亮工程", "en": "Cameras (Xueliang)"},
    "panel_petitions": {"zh": "信访", "en": "Petitions"},
    "panel_ranking": {"zh": "下级中心排名", "en": "Lower-tier ranking"},
    "panel_map": {"zh": "辖区态势", "en": "Area overview"},
    "panel_base": {"zh": "基础数据（人地事物组织）", "en": "Base data"},
    # -- events ---------------------------------------------------------------------------
    "events.reported": {"zh": "今日上报", "en": "Reported today"},
    "events.open": {"zh": "在办", "en": "In progress"},
    "events.resolved": {"zh": "办结", "en": "Resolved"},
    "events.overdue": {"zh": "超期", "en": "Overdue"},
    "events.urgent": {"zh": "紧急", "en": "Urgent"},
    "events.escalated": {"zh": "上报上级", "en": "Escalated"},
    "events.resolution_rate": {"zh": "办结率", "en": "Resolution rate"},
    "events.satisfaction_rate": {"zh": "满意率", "en": "Satisfaction"},
    "chart_category": {"zh": "按类别", "en": "By category"},
    "chart_channel": {"zh": "按来源", "en": "By channel"},
    "chart_hourly": {"zh": "每小时上报", "en": "Reported per hour"},
    "chart_closed": {"zh": "办结层级", "en": "Closed at tier"},
    "slogan": {
        "zh": "小事不出村、大事不出镇、难事不出县",
        "en": "Minor issues stay in the village, major in the town, hard ones in the county",
    },
    "today": {"zh": "今日", "en": "Today"},
    "yesterday": {"zh": "昨日", "en": "Yesterday"},
    "cat_dispute": {"zh": "矛盾纠纷", "en": "Disputes"},
    "cat_security": {"zh": "治安隐患", "en": "Security hazards"},
    "cat_fire": {"zh": "消防", "en": "Fire safety"},
    "cat_sanitation": {"zh": "环境卫生", "en": "Sanitation"},
    "cat_special_population": {"zh": "特殊人群", "en": "Special populations"},
    "cat_citizen_request": {"zh": "民生诉求", "en": "Citizen requests"},
    "cat_other": {"zh": "其他", "en": "Other"},
    "ch_grid_worker": {"zh": "网格员", "en": "Grid worker"},
    "ch_hotline_12345": {"zh": "12345", "en": "12345"},
    "ch_video": {"zh": "视频", "en": "Video"},
    "ch_public": {"zh": "群众", "en": "Public"},
    "ch_police_110": {"zh": "110", "en": "110"},
    "closed_village": {"zh": "村", "en": "Village"},
    "closed_town": {"zh": "镇", "en": "Town"},
    "closed_district": {"zh": "县", "en": "County"},
    "closed_city": {"zh": "市", "en": "City"},
    # -- grids ----------------------------------------------------------------------------
    "grids.coverage": {"zh": "巡查覆盖率", "en": "Patrol coverage"},
    "grids.full_coverage": {"zh": "一日双巡", "en": "2 patrols/day"},
    "grids.patrolled_today": {"zh": "今日已巡", "en": "Patrolled"},
    "grids.patrolled_full": {"zh": "双巡完成", "en": "Twice patrolled"},
    "grids.total": {"zh": "网格总数", "en": "Grids"},
    "grids.staffed": {"zh": "有人网格", "en": "Staffed grids"},
    "grids.workers": {"zh": "网格员", "en": "Grid workers"},
    "grids.workers_on_duty": {"zh": "在岗网格员", "en": "On duty"},
    "workers_on_duty_of": {"zh": "在岗 / 网格员", "en": "On duty / workers"},
    "chart_child_coverage": {"zh": "下级巡查覆盖率", "en": "Coverage by centre"},
    # -- cameras --------------------------------------------------------------------------
    "cameras.online_rate": {"zh": "在线率", "en": "Online rate"},
    "cameras.online": {"zh": "在线", "en": "Online"},
    "cameras.offline": {"zh": "离线", "en": "Offline"},
    "cameras.fault": {"zh": "故障", "en": "Fault"},
    "cameras.total": {"zh": "总数", "en": "Total"},
    "chart_camera_kind": {"zh": "分类在线率", "en": "Online rate by kind"},
    "worst_cameras": {"zh": "在线率最低", "en": "Lowest online rate"},
    "kind_dome": {"zh": "球机", "en": "Dome"},
    "kind_face": {"zh": "人脸", "en": "Face"},
    "kind_checkpoint": {"zh": "卡口", "en": "Checkpoint"},
    "kind_smart": {"zh": "智能", "en": "Smart"},
    "kind_integrated": {"zh": "一体化", "en": "Integrated"},
    # -- petitions ------------------------------------------------------------------------
    "petitions.today": {"zh": "今日信访", "en": "Today"},
    "petitions.group": {"zh": "集体访", "en": "Group"},
    "petitions.skip_level": {"zh": "越级访", "en": "Skip-level"},
    "chart_petitions_7d": {"zh": "近7日", "en": "Last 7 days"},
    "chart_petitions_30d": {"zh": "近30日", "en": "Last 30 days"},
    "pet_letter": {"zh": "来信", "en": "Letter"},
    "pet_visit": {"zh": "来访", "en": "Visit"},
    "pet_online": {"zh": "网上", "en": "Online"},
    # -- ranking columns ------------------------------------------------------------------
    "col_centre": {"zh": "中心", "en": "Centre"},
    "col_index": {"zh": "平安指数", "en": "Index"},
    "col_reported": {"zh": "上报", "en": "Rep."},
    "col_open": {"zh": "在办", "en": "Open"},
    "col_overdue": {"zh": "超期", "en": "Late"},
    "col_resolution_rate": {"zh": "办结率", "en": "Closed"},
    "col_coverage": {"zh": "巡查", "en": "Patrol"},
    "col_online_rate": {"zh": "在线率", "en": "Cams"},
    "col_petitions": {"zh": "信访", "en": "Pet."},
    # -- map ------------------------------------------------------------------------------
    "map_legend_low": {"zh": "较低", "en": "Lower"},
    "map_legend_high": {"zh": "较高", "en": "Higher"},
    "map_self": {"zh": "本中心", "en": "This centre"},
    # -- base data ------------------------------------------------------------------------
    "base_registered_population": {"zh": "户籍人口", "en": "Registered"},
    "base_floating_population": {"zh": "流动人口", "en": "Floating"},
    "base_houses": {"zh": "房屋", "en": "Houses"},
    "base_rentals": {"zh": "出租屋", "en": "Rentals"},
    "base_special_populations": {"zh": "特殊人群", "en": "Special pop."},
    "base_organisations": {"zh": "社会组织", "en": "Orgs"},
    # the map (layouts/map.py)
    "map_index": {"zh": "平安指数", "en": "Ping'an index"},
    "map_reported": {"zh": "今日事件", "en": "Events today"},
    "map_open": {"zh": "在办", "en": "Open"},
    "map_overdue": {"zh": "超期", "en": "Overdue"},
    "map_resolution_rate": {"zh": "办结率", "en": "Resolution rate"},
    "map_coverage": {"zh": "网格巡查覆盖", "en": "Grid coverage"},
    "map_online_rate": {"zh": "视频在线率", "en": "Camera online rate"},
    "map_petitions": {"zh": "今日信访", "en": "Petitions today"},
    "map_patrols": {"zh": "巡查", "en": "Patrols"},
    "map_patrol_0": {"zh": "未巡查", "en": "Not patrolled"},
    "map_patrol_1": {"zh": "巡查1次", "en": "Patrolled once"},
    "map_patrol_full": {"zh": "一日双巡", "en": "Patrolled twice"},
    "map_cam_online": {"zh": "在线", "en": "Online"},
    "map_cam_offline": {"zh": "离线", "en": "Offline"},
    "map_cam_fault": {"zh": "故障", "en": "Fault"},
    "map_cam_unknown": {"zh": "未知", "en": "Unknown"},
    "map_cameras": {"zh": "视频监控", "en": "Cameras"},
    "map_grids": {"zh": "网格", "en": "Grids"},
    "map_cases": {"zh": "新上报事件", "en": "New cases"},
    "map_no_data": {"zh": "无数据", "en": "No data"},
    # video conference, navigation
    "vc_call": {"zh": "视频连线", "en": "Video call"},
    "vc_short": {"zh": "连线", "en": "Call"},
    "vc_group": {"zh": "整体联动", "en": "Convene all"},
    "vc_tier_children": {"zh": "全部下级", "en": "All children"},
    "vc_call_title": {"zh": "视频连线 · {name}", "en": "Video call · {name}"},
    "vc_group_title": {"zh": "整体联动 · {name}", "en": "Convened by {name}"},
    "vc_invited": {"zh": "已邀请 {n} 个中心", "en": "{n} centres invited"},
    "vc_end": {"zh": "结束连线", "en": "End call"},
    "vc_too_many": {"zh": "发起连线过于频繁，请稍后再试", "en": "Too many calls started: try again in a minute"},
    "not_found": {"zh": "页面不存在", "en": "Page not found"},
    "back_to_top": {"zh": "返回首页", "en": "Back to the top centre"},
    # -- embeds ---------------------------------------------------------------------------
    "embed_w_events": {"zh": "事件统计", "en": "Events"},
    "embed_w_trend": {"zh": "今日事件趋势", "en": "Events per hour"},
    "embed_w_closure": {"zh": "闭环处置", "en": "Closed loop"},
    "embed_w_coverage": {"zh": "网格巡查覆盖", "en": "Grid patrol coverage"},
    "embed_w_cameras": {"zh": "视频在线", "en": "Camera online rate"},
    "embed_w_petitions": {"zh": "信访趋势", "en": "Petitions"},
    "embed_w_map": {"zh": "平安态势", "en": "Ping'an map"},
    "embed_as_of": {"zh": "更新于 {time}", "en": "Updated {time}"},
    "embed_today_total": {"zh": "今日累计", "en": "Today so far"},
    "embed_yday_same": {"zh": "昨日同期", "en": "Yesterday, same hours"},
    "embed_yday_total": {"zh": "昨日全天", "en": "Yesterday, all day"},
    "embed_30d_total": {"zh": "合计", "en": "total"},
    "embed_no_geometry": {"zh": "暂无边界数据", "en": "No boundaries on record"},
    "embed_refused": {"zh": "无法显示此组件", "en": "This widget cannot be shown"},
    "embed_missing": {
        "zh": "缺少访问令牌（token）：请使用 pingan embed-url 生成的完整链接。",
        "en": "The access token is missing: use the whole URL made by pingan embed-url.",
    },
    "embed_expired": {
        "zh": "嵌入链接已于 {when} 过期，请向系统管理员索取新链接。",
        "en": "This embed link expired at {when}; ask the administrator for a new one.",
    },
    "embed_tampered": {
        "zh": "访问令牌无效：签名不符或已被修改。",
        "en": "The access token is invalid: its signature does not match or it was altered.",
    },
    "embed_wrong_widget": {
        "zh": "该访问令牌不能用于组件“{widget}”。",
        "en": "This access token is not valid for the widget \u201c{widget}\u201d.",
    },
    "embed_out_of_scope": {
        "zh": "中心 {code} 不在该链接的授权范围内。",
        "en": "Centre {code} is outside the scope of this link.",
    },
    "embed_unknown_widget": {
        "zh": "未知组件“{widget}”，可用组件：{widgets}",
        "en": "Unknown widget \u201c{widget}\u201d; the widgets are: {widgets}",
    },
    "embed_bad_request": {"zh": "请求参数错误", "en": "Bad request"},
    "embed_bad_param": {
        "zh": "参数 {name} 的值无效，可选值：{allowed}",
        "en": "Bad value for the parameter {name}; allowed: {allowed}",
    },
    "embed_unavailable_title": {"zh": "数据暂不可用", "en": "Data unavailable"},
    "embed_unavailable": {
        "zh": "暂时无法读取数据，请稍后重试。",
        "en": "The figures cannot be read at the moment; try again shortly.",
    },
    # -- brief (tablet) --
    "brief_title": {"zh": "{name} · 平安简报", "en": "{name} · Briefing"},
    "brief_replay": {"zh": "态势回放", "en": "Replay"},
    "brief_play": {"zh": "播放", "en": "Play"},
    "brief_pause": {"zh": "暂停", "en": "Pause"},
    "brief_back_live": {"zh": "回到实时", "en": "Back to live"},
    "brief_badge_live": {"zh": "实时", "en": "Live"},
    "brief_badge_replay": {"zh": "回放", "en": "Replay"},
    "brief_speed": {"zh": "倍速", "en": "Speed"},
    "brief_speed_note": {"zh": "1× = 每秒10分钟", "en": "1× = 10 minutes per second"},
    "brief_slider": {"zh": "回放时间", "en": "Replay time"},
    "brief_caption_live": {"zh": "今日 · 实时", "en": "Today · live"},
    "brief_caption_replay": {"zh": "{start} 起至 {end} 整点累计", "en": "Hourly totals {start} – {end}"},
    "brief_reported": {"zh": "上报", "en": "Reported"},
    "brief_resolved": {"zh": "办结", "en": "Resolved"},
    "brief_rate": {"zh": "办结率", "en": "Resolution rate"},
    "brief_petitions": {"zh": "信访", "en": "Petitions"},
    "brief_markers": {"zh": "地图：此前1小时上报 {n} 起", "en": "Map: {n} cases in the hour before"},
    "brief_markers_live": {"zh": "地图：近15分钟新上报", "en": "Map: cases of the last 15 minutes"},
    "brief_sample": {"zh": "（抽样）", "en": " (a sample)"},
    "brief_sample_note": {"zh": "地图标记为抽样，计数为全量", "en": "Markers: a sample; counts: complete"},
    "brief_loading": {"zh": "正在加载回放数据…", "en": "Loading the replay…"},
    "brief_unavailable": {"zh": "回放数据暂不可用", "en": "Replay data unavailable"},
    "brief_chart": {"zh": "近24小时每小时上报 / 办结", "en": "Reported / resolved per hour, last 24 h"},
    "brief_children": {"zh": "下级中心（点按进入）", "en": "Lower-tier centres (tap to open)"},
    "brief_open": {"zh": "进入 {name}", "en": "Open {name}"},
}

# The strings the browser-side live updater (assets/wall.js) needs, sent on the wall's root.
CLIENT_KEYS = ("stale", "since", "ago_s", "live", "connection_lost", "no_children")


def norm_lang(lang: str | None) -> str:
    return lang if lang in LANGS else DEFAULT_LANG


def t(key: str, lang: str = DEFAULT_LANG, **params: object) -> str:
    """The string `key` in `lang` (zh when missing), with `{name}` placeholders filled."""
    entry = STRINGS.get(key)
    text = key if entry is None else (entry.get(lang) or entry[DEFAULT_LANG])
    return text.format(**params) if params else text


def client_strings(lang: str) -> dict[str, str]:
    """The strings for the browser, placeholders left in place (`{n}` is filled client-side)."""
    return {k: t(k, lang) for k in CLIENT_KEYS}
