"""The reminder jobs' HTTP edge: the renewals list and the calendar feeds. The scheduler itself is started by
the composition root (web/composition.py)."""

from typing import Any

from web.controllers.renewals import CalendarFeedController, CalendarFeedFile, RenewalController

route_handlers: list[Any] = [RenewalController, CalendarFeedController, CalendarFeedFile]
