"""One magicgui widget per registry option, built from the option's schema.

A :class:`Field` holds the widget of one :class:`~deq_explorer.schema.Option`, shows a
value and reads back the option's spec text. The widget follows the type: a check box for a
bool, a combo box for choices, a spin box for an int (kept to the option's range), a text
field for a float (it takes ``1e-4`` as typed and turns red on what is not a number in the
range) or a str. An option the entry derives from the problem (TV's weight) starts empty
("from problem"), or at the combo box's first item; the spec then leaves it out and the
solve derives it. A float field also takes ``auto``: the value is then chosen from the data
before the solve (:func:`deq_explorer.api.tune`).
"""

from __future__ import annotations

import math
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, LineEdit, SpinBox
from qtpy.QtCore import QSize
from qtpy.QtWidgets import QStyle, QStyleOptionFrame

from deq_explorer import api
from deq_explorer.errors import SpecError
from deq_explorer.schema import Option, Range

__all__ = ["AUTO", "Field", "field"]

_MAX_INT = 2**31 - 1  # a spin box's bound where the range has none
_TEXT_MAX_PX = 320  # a longer text scrolls in its field; the tooltip shows it all
_INVALID = "color: #e5534b"


class _Auto:
    """The value of an option left out of the spec (derived from the problem)."""

    def __repr__(self) -> str:
        return "AUTO"


AUTO = _Auto()
#: what a field shows for an option left to the problem's rule
DERIVED = "from problem"


class Field:
    """An option's widget: :meth:`show` a value, read its :meth:`text` for the spec."""

    def __init__(self, option: Option, widget: Any) -> None:
        self.option, self.widget = option, widget
        widget.name = widget.label = option.name
        widget.tooltip = self.help = _help(option)
        self.reset()

    def reset(self) -> None:
        """Show the default (auto for an option the entry derives)."""
        self.show(AUTO if self.option.derived else self.option.default)

    def show(self, value: Any) -> None:
        self.widget.value = value

    def text(self) -> str | None:
        """The option's value as spec text; None leaves it out of the spec."""
        value = self.widget.value
        return None if value is AUTO else self.option.format(value)


class Check(Field):
    """A bool: a check box named after the option."""

    def __init__(self, option: Option) -> None:
        super().__init__(option, CheckBox(text=option.name))


class Choice(Field):
    """Choices (a ``Literal``), or a bool that may be auto or None: a combo box."""

    def __init__(self, option: Option) -> None:
        values = option.choices or (True, False)
        items = [(option.format(v), v) for v in values]
        if option.optional and None not in values:
            items.insert(0, ("none", None))
        if option.derived:
            items.insert(0, (DERIVED, AUTO))
        super().__init__(option, ComboBox(choices=items))


class Spin(Field):
    """An int: a spin box within the option's range."""

    def __init__(self, option: Option) -> None:
        r = option.range or Range()
        r = Range(max(r.low, -_MAX_INT), min(r.high, _MAX_INT), r.low_open, r.high_open)
        low = math.floor(r.low) + 1 if r.low_open else math.ceil(r.low)
        high = math.ceil(r.high) - 1 if r.high_open else math.floor(r.high)
        super().__init__(option, SpinBox(min=low, max=high, step=1))


class Text(Field):
    """A float, a str or another type, or an option that may be left out: a text field.

    Its text goes into the spec as typed; empty leaves the option out (auto, the default).
    """

    def __init__(self, option: Option) -> None:
        super().__init__(option, LineEdit())
        unset = option.derived or option.default is None
        hint = DERIVED if option.derived else "none" if unset else option.format(option.default)
        self.widget.native.setPlaceholderText(hint)
        self.widget.changed.connect(self._check)
        self._check()

    def show(self, value: Any) -> None:
        unset = value is AUTO or (value is None and self.option.default is None)
        self.widget.value = "" if unset else self.option.format(value)

    def text(self) -> str | None:
        return self.widget.value.strip() or None

    @property
    def takes_auto(self) -> bool:
        """Whether the field may hold ``auto`` (a float: tuned by :func:`api.tune`)."""
        return self.option.type is float

    def problem(self) -> str:
        """Why the text is not a value of the option ("" if it is one, or empty)."""
        text, o = self.widget.value.strip(), self.option
        if not text or (text.lower() == api.AUTO and self.takes_auto):
            return ""  # auto: tuned from the data before the solve (api.tune)
        try:
            value = o.parse(text)
        except SpecError:
            return f"{text!r} is not a {o.type_name}"
        if o.accepts(value):
            return ""
        return f"{text} is outside {o.range}" if o.range else f"{text} is not one of the choices"

    def _check(self, *_: Any) -> None:
        """Mark text that is not a value (red, the reason in the tooltip); fit the width."""
        problem, edit = self.problem(), self.widget.native
        edit.setStyleSheet(_INVALID if problem else "")
        self.widget.tooltip = f"{problem}\n{self.help}" if problem else self.help
        option = QStyleOptionFrame()
        edit.initStyleOption(option)
        text = self.widget.value or edit.placeholderText() or "0.0001"
        inner = QSize(edit.fontMetrics().horizontalAdvance(text) + 8, 0)
        width = edit.style().sizeFromContents(QStyle.ContentsType.CT_LineEdit, option, inner, edit)
        edit.setMinimumWidth(min(width.width(), _TEXT_MAX_PX))


def field(option: Option) -> Field:
    """The field for ``option``'s type (see the module)."""
    unset = option.derived or option.optional
    if option.choices or (option.type is bool and unset):
        return Choice(option)
    if option.type is bool:
        return Check(option)
    if option.type is int and not unset:
        return Spin(option)
    return Text(option)


def _help(option: Option) -> str:
    """The tooltip: the help, the type and range, the default, what "auto" means."""
    what = f"{option.type_name} in {option.range}" if option.range else option.type_name
    lines = [option.help, f"{what}; default {option.format(option.default)}"]
    if option.derived:
        lines.append(f"empty ({DERIVED}): derived from the problem's noise level when solving")
    if option.type is float:
        lines.append(f"{api.AUTO}: chosen from the data before the solve (a prior's strength: "
                     "smallest SURE risk estimate; needs noise)")  # fmt: skip
    return "\n".join(line for line in lines if line)
