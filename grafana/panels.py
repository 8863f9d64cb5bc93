"""Panel, variable and annotation helpers shared by both dashboards.

Every panel goes through `_panel`, which sets the datasource, the unit and the targets, so
no panel can be built without a unit or with a datasource other than `${DS_PROMETHEUS}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import bargauge, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders.common import (
    ReduceDataOptions,
    VizLegendOptions,
    VizTooltipOptions,
)
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DashboardLink,
    DatasourceVariable,
    QueryVariable,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.variants import Dataquery as DataqueryVariant
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DS_INPUT = "DS_PROMETHEUS"
DS = dm.DataSourceRef(type_val="prometheus", uid="${" + DS_INPUT + "}")
SEL = 'job=~"$job", instance=~"$instance"'
MSEL = SEL + ', model=~"$model"'
TOKENS_PER_SECOND = "suffix: tok/s"
RATE = "$__rate_interval"
TAG = "opta-lmx"  # both dashboards carry it; their links list the dashboards tagged so


@dataclass(frozen=True)
class FleetColumn:
    """One column of the fleet table: an instant query with one series per (job,
    instance), its unit and the names of its codes."""

    title: str
    expr: str
    mappings: list[dm.ValueMapping] | None = None
    unit: str = "none"


@dataclass(frozen=True)
class Q:
    """One PromQL target; `legend` is Grafana's legend format (`{{label}}`)."""

    expr: str
    legend: str = ""


class _PanelBuilder(Protocol):
    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def unit(self, unit: str) -> Self: ...
    def datasource(self, datasource: dm.DataSourceRef) -> Self: ...
    def span(self, w: int) -> Self: ...
    def height(self, h: int) -> Self: ...
    def with_target(self, target: Builder[DataqueryVariant]) -> Self: ...


P = TypeVar("P", bound=_PanelBuilder)


def ref_id(index: int) -> str:
    """The refId of a panel's target: A, B, C, … in the order the targets are given."""
    return chr(ord("A") + index)


def _panel(
    panel: P,
    title: str,
    unit: str,
    targets: Sequence[Q],
    *,
    description: str,
    span: int,
    height: int,
    instant: bool = False,
    table_format: bool = False,
) -> P:
    panel.title(title).description(description).unit(unit).datasource(DS)
    panel.span(span).height(height)
    for index, target in enumerate(targets):
        query = Dataquery().expr(target.expr).ref_id(ref_id(index)).datasource(DS)
        query.legend_format(target.legend or "__auto")
        if instant:
            query.instant()
        else:
            query.range()
        if table_format:
            query.format(PromQueryFormat.TABLE)
        panel.with_target(query)
    return panel


def _legend() -> VizLegendOptions:
    return (
        VizLegendOptions()
        .show_legend(True)
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
    )


def _tooltip() -> VizTooltipOptions:
    return (
        VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)
    )


def _last() -> ReduceDataOptions:
    return ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def thresholds(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    """The first step's value must be None: Grafana's base colour."""
    return (
        ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=value, color=color) for value, color in steps])
    )


def value_names(names: dict[int, tuple[str, str]]) -> list[dm.ValueMapping]:
    """Numeric codes (recording rules' `:code` series) back to names and colours."""
    return [
        dm.ValueMap(
            options={
                str(code): dm.ValueMappingResult(text=text, color=color, index=index)
                for index, (code, (text, color)) in enumerate(sorted(names.items()))
            }
        )
    ]


UP_DOWN = value_names({0: ("down", "red"), 1: ("up", "green")})
CONNECTION_STATES = value_names(
    {
        1: ("connecting", "blue"),
        2: ("open", "green"),
        3: ("backoff", "orange"),
        4: ("auth_failed", "red"),
        5: ("stopped", "purple"),
    }
)
READINESS = value_names(
    {
        1: ("admitted", "blue"),
        2: ("loading", "yellow"),
        3: ("canary_pending", "orange"),
        4: ("routable", "green"),
        5: ("quarantined", "red"),
    }
)
HEALTH_STATUSES = value_names({1: ("ok", "green"), 2: ("degraded", "red")})
VERDICTS = value_names({1: ("healthy", "green"), 2: ("degraded", "orange"), 3: ("critical", "red")})
SHEDDING = value_names({0: ("serving", "green"), 1: ("shedding", "red")})
CRASH_LOOP = value_names({0: ("no", "green"), 1: ("crash loop", "red")})
RELAYED = " From LMX's own /admin/metrics, relayed by the exporter."


def timeseries_panel(
    title: str,
    unit: str,
    *targets: Q,
    description: str,
    span: int = 12,
    height: int = 8,
    bars: bool = False,
) -> timeseries.Panel:
    """Everything plotted here is non-negative, so the axis starts at 0."""
    panel = timeseries.Panel().legend(_legend()).tooltip(_tooltip()).fill_opacity(10).min(0)
    if bars:
        panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
    return _panel(panel, title, unit, targets, description=description, span=span, height=height)


def stat_panel(
    title: str,
    unit: str,
    *targets: Q,
    description: str,
    span: int = 4,
    height: int = 4,
    mappings: list[dm.ValueMapping] | None = None,
    steps: tuple[tuple[float | None, str], ...] = ((None, "green"),),
    text_mode: common.BigValueTextMode = common.BigValueTextMode.AUTO,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .reduce_options(_last())
        .text_mode(text_mode)
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .thresholds(thresholds(*steps))
    )
    if mappings:
        panel.mappings(mappings)
    return _panel(
        panel,
        title,
        unit,
        targets,
        description=description,
        span=span,
        height=height,
        instant=True,
    )


def bar_gauge_panel(
    title: str,
    unit: str,
    *targets: Q,
    description: str,
    span: int = 12,
    height: int = 8,
    ratio: bool = True,
) -> bargauge.Panel:
    panel = (
        bargauge.Panel()
        .reduce_options(_last())
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .min(0)
        .thresholds(thresholds((None, "blue")))
    )
    if ratio:
        panel.max(1)
    return _panel(
        panel,
        title,
        unit,
        targets,
        description=description,
        span=span,
        height=height,
        instant=True,
    )


def state_timeline_panel(
    title: str,
    *targets: Q,
    mappings: list[dm.ValueMapping],
    description: str,
    span: int = 24,
    height: int = 8,
    query_mappings: Mapping[str, list[dm.ValueMapping]] | None = None,
) -> statetimeline.Panel:
    """`mappings` name every row's codes; `query_mappings` (by refId) replace them for the
    rows of one target, so states with different codes share a timeline."""
    panel = (
        statetimeline.Panel()
        .mappings(mappings)
        .show_value(common.VisibilityMode.AUTO)
        .merge_values(True)
        .row_height(0.8)
        .legend(_legend())
        .tooltip(_tooltip())
        .thresholds(thresholds((None, "text")))
    )
    for ref, names in (query_mappings or {}).items():
        panel.override_by_query(ref, [dm.DynamicConfigValue(id_val="mappings", value=names)])
    return _panel(panel, title, "none", targets, description=description, span=span, height=height)


def table_panel(
    title: str,
    unit: str,
    *targets: Q,
    description: str,
    transformations: list[dm.DataTransformerConfig],
    overrides: dict[str, list[dm.DynamicConfigValue]],
    span: int = 24,
    height: int = 8,
) -> table.Panel:
    panel = table.Panel().transformations(transformations).show_header(True)
    for field, properties in overrides.items():
        panel.override_by_name(field, properties)
    return _panel(
        panel,
        title,
        unit,
        targets,
        description=description,
        span=span,
        height=height,
        instant=True,
        table_format=True,
    )


def fleet_table_panel(
    title: str, columns: Sequence[FleetColumn], *, description: str, height: int = 8
) -> table.Panel:
    """One row per LMX: every column's instant query merged on (job, instance)."""
    refs = [ref_id(index) for index in range(len(columns))]
    organize = dm.DataTransformerConfig(
        id_val="organize",
        options={
            "excludeByName": {"Time": True},
            "indexByName": {"instance": 0, "job": 1}
            | {f"Value #{ref}": n for n, ref in enumerate(refs, start=2)},
            "renameByName": {"instance": "Instance", "job": "Job"}
            | {f"Value #{ref}": c.title for ref, c in zip(refs, columns, strict=True)},
        },
    )
    overrides: dict[str, list[dm.DynamicConfigValue]] = {}
    for column in columns:
        properties = [dm.DynamicConfigValue(id_val="unit", value=column.unit)]
        if column.mappings:
            properties.append(dm.DynamicConfigValue(id_val="mappings", value=column.mappings))
            properties.append(
                dm.DynamicConfigValue(
                    id_val="custom.cellOptions", value={"type": "color-background"}
                )
            )
        overrides[column.title] = properties
    return table_panel(
        title,
        "none",
        *(Q(column.expr, "{{instance}}") for column in columns),
        description=description,
        transformations=[dm.DataTransformerConfig(id_val="merge", options={}), organize],
        overrides=overrides,
        height=height,
    )


# -- variables -------------------------------------------------------------------------
def datasource_variable() -> DatasourceVariable:
    """Named like the import input, so `${DS_PROMETHEUS}` also resolves in a dashboard that
    file provisioning loads as is (provisioning never fills `__inputs`)."""
    return DatasourceVariable(DS_INPUT).label("Data source").type("prometheus")


def query_variable(name: str, label: str, query: str, *, multi: bool) -> QueryVariable:
    variable = (
        QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    if multi:
        variable.all_value(".*")
    return variable


def standard_variables(*, with_model: bool) -> list[Builder[dm.VariableModel]]:
    variables: list[Builder[dm.VariableModel]] = [
        datasource_variable(),
        query_variable("job", "Job", "label_values(opta_lmx_up, job)", multi=True),
        query_variable(
            "instance", "Instance", 'label_values(opta_lmx_up{job=~"$job"}, instance)', multi=True
        ),
    ]
    if with_model:
        variables.append(
            query_variable(
                "model",
                "Model",
                f"label_values(opta_lmx_model_loaded{{{SEL}}}, model)",
                multi=True,
            )
        )
    return variables


# -- annotations -----------------------------------------------------------------------
class PrometheusAnnotation(dm.AnnotationQuery):
    """The SDK's AnnotationQuery lacks the Prometheus annotation fields (title and text
    formats, tag keys, step); Grafana reads them from the same object."""

    def __init__(self, name: str, expr: str, color: str, title: str, tags: str) -> None:
        super().__init__(name=name, datasource=DS, enable=True, icon_color=color, expr=expr)
        self.title_format, self.tag_keys = title, tags

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload.update(titleFormat=self.title_format, tagKeys=self.tag_keys, step="1m")
        return payload


class Annotation(Builder[dm.AnnotationQuery]):
    def __init__(self, name: str, expr: str, *, color: str, title: str, tags: str = "") -> None:
        self._internal = PrometheusAnnotation(name, expr, color, title, tags)

    def build(self) -> dm.AnnotationQuery:
        return self._internal


def base_dashboard(uid: str, title: str, description: str, *, with_model: bool) -> Dashboard:
    return (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG, "llm"])
        .time("now-3h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .variables(standard_variables(with_model=with_model))
        .link(
            DashboardLink("Opta LMX")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(False)
            .include_vars(True)
            .keep_time(True)
        )
    )
