import ipywidgets as widgets

from mltoolkit.widgets.panel import PanelBase, close_tree, field_row


def test_close_tree_closes_nested_children():
    leaf = widgets.Button()
    inner = widgets.HBox([leaf])
    root = widgets.VBox([inner, widgets.HTML("x")])
    close_tree(root)
    assert all(w.comm is None for w in (leaf, inner, root))


def test_field_row_puts_an_empty_message_beside_the_widget():
    text = widgets.Text()
    row, error = field_row(text)
    assert row.children == (text, error) and error.value == ""


def test_a_panel_displays_as_its_widget():
    class Panel(PanelBase):
        def __init__(self):
            self.widget = widgets.VBox([])

    panel = Panel()
    bundle = panel._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.widget.model_id
