"""The `llm:` link router (lessons, palette) and the lessons pane it opens."""

from __future__ import annotations

from tui.messages import CloseLessons, FollowLink


class LinksMixin:
    """Part of `ExplorerApp`: follow `llm:` links; show, hide and open lessons."""

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
        if link.kind in ("tensor", "node"):
            self.open_node(link.name, select_in_tree=True)
        elif link.kind == "view":
            self.show_view(link.view)
        elif link.kind == "spectrum":
            if link.name:
                self.open_spectrum(link.name)
            else:
                self.show_model_spectra()
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
        if self.lessons_visible:
            self.view("lessons").focus_list()

    def on_close_lessons(self, message: CloseLessons) -> None:
        message.stop()
        self.lessons_visible = False

    def open_lesson(self, lesson_id: str) -> None:
        if self._once_mounted("lessons", self.open_lesson, lesson_id):
            return
        self.lessons_visible = True
        self.view("lessons").open(lesson_id)
