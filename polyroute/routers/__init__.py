"""Learned routers: trained on routing datasets by the workbench, saved as artifacts.

``polyroute.routers.learned`` holds the routers and their registry
(``polyroute.routers.learned.ROUTERS``, the workbench's ``--router NAME``);
``polyroute.routers.base`` the contract and the shared chooser;
``polyroute.routers.artifact`` saving and loading.  The gateway's selectors,
including the one that serves a trained artifact, live in :mod:`polyroute.selectors`.
"""
