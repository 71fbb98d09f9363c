"""Channel context: half reports take the rest from the same channel, nothing else does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.context import ChannelContext, Report
from bot.detect import Detector
from bot.models import Detection, Post

START = datetime(2025, 3, 7, 22, 0, tzinfo=UTC)


class Channel:
    """One channel's posts through the real detector and a shared context."""

    def __init__(self, detector: Detector, context: ChannelContext, channel_id: int = 1) -> None:
        self.detector = detector
        self.context = context
        self.channel_id = channel_id

    def say(
        self,
        id_: int,
        minutes: float,
        text: str,
        *,
        reply_to: int | None = None,
        home: str | None = None,
    ) -> Detection:
        post = Post(self.channel_id, id_, START + timedelta(minutes=minutes), text)
        replied = self.context.get(self.channel_id, reply_to) if reply_to else None
        detection = self.context.complete(
            post,
            self.detector.detect(text, post.date),
            replied=replied,
            home_region=home,
            places=lambda: self.detector.places(text),
        )
        self.context.remember(Report.of(post, detection))
        return detection


@pytest.fixture
def context(detector: Detector) -> ChannelContext:
    return ChannelContext(detector.lexicon.token_sets["continuation"])


def test_kind_only_takes_the_latest_place(detector: Detector, context: ChannelContext) -> None:
    channel = Channel(detector, context)
    channel.say(1, 0, "Харків — вибухи")
    later = channel.say(2, 3, "Ще вибухи!")
    assert later.alert and later.regions == ("UA-63",)
    assert [(e.rule, e.text) for e in later.evidence if e.rule.startswith("context")] == [
        ("context:recent", "1/1")
    ]


def test_place_only_continuation_takes_the_kind(
    detector: Detector, context: ChannelContext
) -> None:
    channel = Channel(detector, context)
    assert not channel.say(1, 0, "Шахеди з півночі").alert
    place = channel.say(2, 1, "курсом на Харків")
    assert place.alert and place.kinds == ("drone",) and place.regions == ("UA-63",)


def test_window_and_other_channels(detector: Detector, context: ChannelContext) -> None:
    first, second = Channel(detector, context, 1), Channel(detector, context, 2)
    first.say(1, 0, "Харків — вибухи")
    assert not second.say(1, 2, "Ще вибухи!").alert  # another channel's place is not borrowed
    assert not first.say(2, 11, "Ще вибухи!").alert  # ten minutes is the window


def test_reply_beats_latest(detector: Detector, context: ChannelContext) -> None:
    channel = Channel(detector, context)
    channel.say(1, 0, "Взрывы в Белгороде")
    channel.say(2, 1, "Взрывы в Курске")
    reply = channel.say(3, 5, "Сбиты две ракеты", reply_to=1)
    assert reply.regions == ("RU-BEL",)


def test_home_region_is_the_last_resort(detector: Detector, context: ChannelContext) -> None:
    channel = Channel(detector, context)
    assert channel.say(1, 0, "Громко! Работает ПВО", home="RU-ROS").regions == ("RU-ROS",)
    # a place-only post never takes a kind from the home region
    assert not channel.say(2, 30, "Таганрог", home="RU-ROS").alert


def test_vetoed_and_chatty_posts_borrow_nothing(
    detector: Detector, context: ChannelContext
) -> None:
    channel = Channel(detector, context)
    channel.say(1, 0, "Взрывы в Таганроге")
    assert not channel.say(2, 1, "Завтра учения ПВО").alert
    assert not channel.say(3, 2, "Доброе утро, Таганрог!").alert
    assert not channel.say(4, 3, "В Таганроге открыли новый парк").alert


def test_context_is_bounded(detector: Detector) -> None:
    context = ChannelContext(frozenset(), per_channel=2, max_channels=3)
    for channel in range(5):
        for id_ in range(4):
            post = Post(channel, id_, START, "x")
            context.remember(Report.of(post, Detection(kinds=("drone",))))
    assert context.get(0, 3) is None  # the least recent channel is forgotten
    assert context.get(4, 3) is not None and context.get(4, 1) is None


def test_a_district_elsewhere_is_the_home_citys(
    detector: Detector, context: ChannelContext
) -> None:
    channel = Channel(detector, context)
    text = "Громко! Подписчики из Промышленного района слышат взрывы"
    assert channel.detector.detect(text).regions != ("RU-SMO",)  # a district in another region
    assert channel.say(1, 0, text, home="RU-SMO").regions == ("RU-SMO",)
    town = channel.say(2, 30, "Взрывы в Таганроге", home="RU-SMO")
    assert town.regions == ("RU-ROS",)  # a named town is not a district: it stays
