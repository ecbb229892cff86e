"""Small pieces both panels use: a field row with its error label, closing a widget tree."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

DESCRIPTION_STYLE = {"description_width": "120px"}


def field_row(widget: Any) -> tuple[widgets.HBox, widgets.HTML]:
    """The widget with an (empty) HTML label beside it for its validation message."""
    error = widgets.HTML(value="")
    return widgets.HBox([widget, error]), error


def close_tree(widget: Any) -> None:
    """Close a widget and every widget below it (Box children, nested)."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    widget.close()


class PanelBase:
    """A panel is a plain object holding its root ``widget``; it displays as that widget."""

    widget: widgets.Box

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
