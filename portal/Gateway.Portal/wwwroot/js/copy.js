// Copy buttons: <button data-copy="input-id" data-copied="Copied" hidden>. Shown only when the clipboard API exists;
// without JavaScript the key stays selectable in its read-only field.
(function () {
    if (!navigator.clipboard) return;
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
        var field = document.getElementById(button.getAttribute("data-copy"));
        if (!field) return;
        var label = button.textContent;
        button.hidden = false;
        button.addEventListener("click", function () {
            navigator.clipboard.writeText(field.value).then(function () {
                button.textContent = button.getAttribute("data-copied") || label;
                setTimeout(function () { button.textContent = label; }, 2000);
            });
        });
    });
    var key = document.getElementById("revealed-key");
    if (key) key.addEventListener("focus", function () { key.select(); });
})();
