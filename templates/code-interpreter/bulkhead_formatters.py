# Rich results of the code-interpreter template, run in every IPython kernel at start-up
# (c.InteractiveShellApp.exec_files in ipython_kernel_config.py).
#
# Adds two display formats next to IPython's own, as E2B's interpreter names them:
#   e2b/data   a pandas DataFrame as {column: [values...]} (dates as ISO-8601 strings)
#   e2b/chart  a matplotlib Figure as E2B's chart description (the e2b-charts package)
# Both look the library up in sys.modules first: a cell that never imported pandas or
# matplotlib pays nothing. Nothing is left in the user's namespace.


def _bulkhead_install_formatters():
    import json
    import sys

    from IPython import get_ipython
    from IPython.core.formatters import BaseFormatter
    from traitlets import ObjectName, Unicode

    shell = get_ipython()
    if shell is None:
        return

    class DataFormatter(BaseFormatter):
        format_type = Unicode("e2b/data")
        print_method = ObjectName("_repr_e2b_data_")
        _return_type = (dict,)

        def __call__(self, obj):
            pandas = sys.modules.get("pandas")
            if pandas is None or not isinstance(obj, pandas.DataFrame):
                return None
            try:
                return {
                    str(column): json.loads(obj[column].to_json(orient="values", date_format="iso"))
                    for column in obj.columns
                }
            except Exception:  # a format that cannot be made is left out, never an error
                return None

    class ChartFormatter(BaseFormatter):
        format_type = Unicode("e2b/chart")
        print_method = ObjectName("_repr_e2b_chart_")
        _return_type = (dict,)

        def __call__(self, obj):
            figure = sys.modules.get("matplotlib.figure")
            if figure is None or not isinstance(obj, figure.Figure):
                return None
            try:
                from e2b_charts import chart_figure_to_dict

                return chart_figure_to_dict(obj) or None
            except Exception:
                return None

    formatters = shell.display_formatter.formatters
    formatters["e2b/data"] = DataFormatter(parent=shell.display_formatter)
    formatters["e2b/chart"] = ChartFormatter(parent=shell.display_formatter)


_bulkhead_install_formatters()
del _bulkhead_install_formatters
