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
    "col_reported": {"zh": "上报", "en": "Reported"},
    "col_open": {"zh": "在办", "en": "Open"},
    "col_overdue": {"zh": "超期", "en": "Overdue"},
    "col_resolution_rate": {"zh": "办结率", "en": "Resolved"},
    "col_coverage": {"zh": "巡查", "en": "Patrol"},
    "col_online_rate": {"zh": "在线率", "en": "Cameras"},
    "col_petitions": {"zh": "信访", "en": "Petitions"},
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
    "not_found": {"zh": "页面不存在", "en": "Page not found"},
    "back_to_top": {"zh": "返回首页", "en": "Back to the top centre"},
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
