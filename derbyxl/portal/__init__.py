"""The returns portal: ``derbyxl serve``. Service leads upload through personal links and see
at once what to fix; the performance team watches the quarter fill up and consolidates.

    from derbyxl.portal.app import create_app
    app = create_app("portal/", load_register("register.csv"), "2025-26-Q1")   # an ASGI app

It needs the ``portal`` extra: ``pip install 'derbyxl[portal]'``.
"""
