"""Command palette entries that read "group: action": go to any tensor, switch views, open lessons."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class ExplorerCommands(Provider):
    def _commands(self) -> list[tuple[str, object, str]]:
        app = self.app
        out: list[tuple[str, object, str]] = []
        for view, label in (("summary", "model card"), ("cross-layer", "cross-layer statistics"),
                            ("attention", "attention"), ("tokens", "tokens"), ("lens", "logit lens"),
                            ("chat-template", "chat template"), ("experts", "experts"),
                            ("activations", "activations"), ("patching", "patching"), ("attribution", "attribution")):
            out.append((f"view: {label}", partial(app.show_view, view), f"show the {label} view"))
        out.append(("view: diff", partial(app.show_view, "diff"),
                    "what training changed, against the base (llm-internals MODEL --base BASE)"))
        out.append(("diff: rank of this tensor", partial(app.diff_action, "rank"), "singular values of ΔW, stable and effective ranks"))
        out.append(("diff: behaviour on a prompt", partial(app.diff_action, "prompt"),
                    "KL per position and the residual cosine of the two models on a prompt"))
        for node in getattr(app, "nodes", []):
            name = node["name"]
            if not name:
                continue
            short = name.rsplit(".", 1)[-1] if node["kind"] == "module" else ".".join(name.split(".")[-2:])
            layer = node.get("layer")
            title = f"go: layer {layer} {short}" if layer is not None else f"go: {name}"
            out.append((title, partial(app.open_node, name, True, True), name))
        try:
            from lessons.catalog import load_lessons

            for lesson in load_lessons():
                out.append((f"lesson: {lesson.title}", partial(app.open_lesson, lesson.id), f"open the lesson {lesson.id}"))
        except Exception:  # noqa: BLE001 - lessons are optional in the palette
            pass
        out.append(("experts: route this prompt", app.action_route_prompt,
                    "which experts each token of the experts view's prompt goes to, layer by layer"))
        out.append(("experts: toggle the tree's layout", app.action_toggle_expert_layout,
                    "draw the experts as stored (one tensor per expert) or fused in memory"))
        out.append(("model: open the MoE demo", app.action_moe_demo, "how to open the Mixtral-style demo model"))
        out.append(("patch: this prompt", app.patch_this_prompt,
                     "open the patching view with the current view's prompt as the clean prompt"))
        out.append(("worker: restart", app.action_restart_worker, "restart the model worker"))
        out.append(("worker: show log", app.action_worker_log, "the model worker's log file"))
        out.append(("app: export view", app.action_export, "save the view as SVG and its data as JSON"))
        return out

    async def discover(self) -> Hits:
        for title, callback, help_text in self._commands():
            if title.startswith(("view:", "lesson:", "worker:", "app:", "experts:", "model:", "patch:", "diff:")):
                yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
