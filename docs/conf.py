"""Sphinx configuration: ``nox -s docs`` builds docs/_build/html.

The pages stay Markdown (myst-parser); the API reference comes from the
docstrings (autodoc, Google style through napoleon). There is no
intersphinx: the build needs no network, so the names from the standard
library and the dependencies that cannot resolve offline are listed in
``nitpick_ignore_regex`` below.
"""

from __future__ import annotations

import importlib
import inspect
import types
from typing import Any

from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer

import faye_websocket

project = "faye-websocket for Python"
author = "faye-websocket for Python contributors"
copyright = "faye-websocket for Python contributors"
release = version = faye_websocket.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "examples"]

# MyST: `{eval-rst}` blocks and `:::` fences; anchors for the `page.md#heading`
# links, down to the #### headings the pages use.
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 4

# autodoc: members in source order, inherited ones included (WebSocket's
# send/receive live on a private base class; _skip_foreign_member drops what
# anyio and the builtins contribute), defaults as written in the source.
# Types go in the signatures and again in the descriptions of the documented
# parameters.
autodoc_member_order = "bysource"
autodoc_default_options = {
    "members": True,
    "inherited-members": True,
    "undoc-members": True,
    "show-inheritance": True,
}
autodoc_typehints = "both"
autodoc_typehints_description_target = "documented"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_class_signature = "mixed"

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True
# "Attributes:" sections as fields of the class: the attributes themselves
# are listed as members (dataclass fields), and would be described twice.
napoleon_use_ivar = True

# Every cross-reference must resolve (-n), except these. Without intersphinx
# (no network in the build) the standard library's and the dependencies'
# classes have no target here; they still show, as text, in the signatures.
nitpicky = True
nitpick_ignore_regex = [
    ("py:.*", r"(anyio|h11|ssl|collections\.abc|enum|typing)\..*"),
    # Type aliases in signatures, shown by their name; the parameter
    # descriptions say what the callables take.
    ("py:class", r"(RequestHandler|UpgradeHandler|ASGIApp|LifespanMode)"),
    # Private base and helper classes named in a few signatures (the common
    # base of WebSocket and Client; permessage-deflate's negotiated state):
    # their public members are documented on the public classes.
    ("py:class", r"faye_websocket\._.*"),
    # The same, named without their module: EventSource's ready_state enum
    # (its values are EventSource.CONNECTING, OPEN and CLOSED) and the error
    # permessage-deflate's negotiation hooks raise inside the handshake.
    ("py:(class|exc)", r"(EventSourceState|NegotiationError)"),
]

html_theme = "furo"
html_title = f"faye-websocket {release}"
html_static_path: list[str] = []


#: The public modules whose classes come from private ones (``__module__``
#: rewritten to the public path).
PUBLIC_MODULES = ("faye_websocket", "faye_websocket.http", "faye_websocket.hub")


def _defining_module(cls: type) -> tuple[str, str] | None:
    """The module and qualified name a re-exported class was written under,
    found through one of its functions (their ``__module__`` is not rewritten)."""
    for value in vars(cls).values():
        func = getattr(value, "__func__", getattr(value, "fget", value))
        if inspect.isfunction(func) and func.__qualname__.count(".") >= 1:
            return func.__module__, func.__qualname__.rpartition(".")[0]
    return None


def _merge_attribute_docs(app: Sphinx) -> None:
    """Give the analyzers of the public modules the ``#:`` attribute comments
    and the source order of the classes they re-export.

    autodoc reads both from the module named by ``__module__``, which for a
    re-exported class is the public ``__init__``-style module, not the file
    the class is written in; without this, attributes such as
    ``EventSource.last_event_id`` would be missing and "bysource" would fall
    back to alphabetical order.
    """
    for public in PUBLIC_MODULES:
        module = importlib.import_module(public)
        analyzer = ModuleAnalyzer.for_module(public)
        analyzer.analyze()
        classes = [getattr(module, name) for name in module.__all__]
        for cls in list(classes):
            classes.extend(v for v in vars(cls).values() if isinstance(v, type))
        for cls in classes:
            if not isinstance(cls, type) or cls.__module__ != public:
                continue
            origin = _defining_module(cls)
            if origin is None:
                continue
            real = ModuleAnalyzer.for_module(origin[0])
            real.analyze()
            for (namespace, attr), doc in real.attr_docs.items():
                if namespace == origin[1]:
                    analyzer.attr_docs[(cls.__qualname__, attr)] = doc
            prefix = origin[1] + "."
            for tag, order in real.tagorder.items():
                if tag.startswith(prefix):
                    analyzer.tagorder[cls.__qualname__ + "." + tag[len(prefix):]] = order


_BUILTIN_ROUTINES = (types.BuiltinFunctionType, types.MethodDescriptorType,
                     types.WrapperDescriptorType, types.ClassMethodDescriptorType,
                     types.MethodWrapperType)


def _defined_here(obj: Any) -> bool:
    """Whether a member comes from this package (not anyio, not builtins)."""
    target = getattr(obj, "__func__", None) or getattr(obj, "fget", None) or obj
    if isinstance(target, (types.MemberDescriptorType, types.GetSetDescriptorType)):
        return str(target.__objclass__.__module__).startswith("faye_websocket")
    if isinstance(target, _BUILTIN_ROUTINES):
        return False  # int.from_bytes on an IntEnum, Exception.add_note...
    if inspect.isfunction(target):
        return str(target.__module__).startswith("faye_websocket")
    return True  # data, enum members, instance attributes


def _skip_foreign_member(app: Sphinx, what: str, name: str, obj: Any, skip: bool,
                         options: Any) -> bool | None:
    """Inherited members are documented when they come from this package's
    (often private) base classes, not from anyio's ABCs or ``Exception``."""
    if not _defined_here(obj):
        return True
    if what == "class" and isinstance(obj, type) and "." not in obj.__qualname__:
        return True  # WebSocket.Client: an alias of faye_websocket.Client
    return None


def _public_bases(app: Sphinx, name: str, obj: type, options: Any, bases: list[type]) -> None:
    """Show a private base class as the public bases it stands for."""
    result: list[type] = []
    pending = list(bases)
    while pending:
        base = pending.pop(0)
        if base.__module__.startswith("faye_websocket._"):
            pending[:0] = [b for b in base.__bases__ if b is not object]
        elif base not in result:
            result.append(base)
    bases[:] = result or [object]


def setup(app: Sphinx) -> None:
    app.connect("builder-inited", _merge_attribute_docs)
    app.connect("autodoc-skip-member", _skip_foreign_member)
    app.connect("autodoc-process-bases", _public_bases)
