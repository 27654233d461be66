"""Ids of the wall's charts and areas (constants; assets/wall.js and the tests use them)."""

CHART_HOURLY = "wall-chart-hourly"
CHART_CATEGORY = "wall-chart-category"
CHART_CHANNEL = "wall-chart-channel"
CHART_CLOSED = "wall-chart-closed"
CHART_CHILD_COVERAGE = "wall-chart-child-coverage"
CHART_CAMERA_KIND = "wall-chart-camera-kind"
CHART_PETITIONS_7D = "wall-chart-petitions-7d"
CHART_PETITIONS_30D = "wall-chart-petitions-30d"

CHARTS = (
    CHART_HOURLY, CHART_CATEGORY, CHART_CHANNEL, CHART_CLOSED,
    CHART_CHILD_COVERAGE, CHART_CAMERA_KIND, CHART_PETITIONS_7D, CHART_PETITIONS_30D,
)

MAP_AREA = "wall-map-area"
