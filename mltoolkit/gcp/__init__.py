"""Google Cloud: the GKE Pulumi program, its components, ``plan()`` under mocks, prices, ``GKETarget``.

This package file imports nothing on purpose: ``mltoolkit.spec`` reads the machine and GPU
catalogue (``mltoolkit.gcp.catalog``) without loading Pulumi. Import the modules themselves:
``mltoolkit.gcp.program.build_program``, ``mltoolkit.gcp.plan.plan``.
"""
