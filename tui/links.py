"""The `llm:` link router (lessons, palette) and the lessons pane it opens."""

from __future__ import annotations

from tui.messages import CloseLessons, FollowLink

#: The width from which a lesson is shown beside the open view; narrower, it takes the main area alone.
LESSON_BESIDE_MIN_WIDTH = 160


class LinksMixin:
    """Part of `ExplorerApp`: follow `llm:` links; show, hide and open lessons.

    Layout: on a terminal at least `LESSON_BESIDE_MIN_WIDTH` wide the lessons pane sits beside the view; on a
    narrower one an open lesson takes the main area (class `-lesson-main`), and a link it follows to a view,
    tensor or module shows that view instead (F2 brings the lesson back, where it was)."""

    lessons_visible: bool
    current_view: str

    @property
    def lesson_is_main(self) -> bool:
        return bool(self.lessons_visible and self.size.width < LESSON_BESIDE_MIN_WIDTH)

    def _layout_lessons(self) -> None:
        self.set_class(self.lesson_is_main, "-lesson-main")

    def on_follow_link(self, message: FollowLink) -> None:
        message.stop()
        self.follow_link(message.target)

    def follow_link(self, target: str) -> None:
        """Move the explorer to an `llm:` link target (lessons, palette)."""
        from lessons.catalog import parse_link

        try:
            link = parse_link(target)
        except ValueError as exc:
            self.notify(str(exc), severity="error")
            return
        if link.kind != "lesson" and self.lesson_is_main:
            self.lessons_visible = False  # the view the lesson links to takes the main area
            self.notify("F2 returns to the lesson", timeout=3)
        if link.kind in ("tensor", "node"):
            self.open_node(link.name, select_in_tree=True)
        elif link.kind == "view":
            self.show_view(link.view)
        elif link.kind == "attention":
            if self._once_mounted("attention", self.follow_link, target):
                return
            self.show_view("attention")
            self.view("attention").focus_on(prompt=link.prompt, layer=link.layer, head=link.head)
        elif link.kind == "lesson":
            self.open_lesson(link.lesson)

    def action_toggle_lessons(self) -> None:
        if self._once_mounted("lessons", self.action_toggle_lessons):
            return
        self.lessons_visible = not self.lessons_visible
        pane = self.view("lessons")
        if self.lessons_visible:
            self.call_after_refresh(pane.focus_body if pane.current else pane.focus_list)
        else:
            self.call_after_refresh(self._settle_focus, self.query_one(f"#{self.current_view}"))

    def on_close_lessons(self, message: CloseLessons) -> None:
        message.stop()
        self.lessons_visible = False
        self.call_after_refresh(self._settle_focus, self.query_one(f"#{self.current_view}"))

    def open_lesson(self, lesson_id: str) -> None:
        if self._once_mounted("lessons", self.open_lesson, lesson_id):
            return
        self.lessons_visible = True
        self.view("lessons").open(lesson_id)  # and focuses it, after the next refresh
