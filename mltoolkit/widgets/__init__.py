"""Thin ipywidgets panels over the toolkit: provision a deployment, monitor a running one."""

from mltoolkit.widgets.monitor import MonitorPanel
from mltoolkit.widgets.provision import ProvisionPanel
from mltoolkit.widgets.targets import TargetRequest, build_target

__all__ = ["MonitorPanel", "ProvisionPanel", "TargetRequest", "build_target"]
