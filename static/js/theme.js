// Colour theme: "system" (follow prefers-color-scheme), "light" or "dark", kept in
// localStorage. Loaded synchronously in <head> so data-theme is set on <html> before
// the first paint (no flash of the wrong theme); no inline script, the CSP forbids it.
// Pages with a [data-theme-switch] group get its buttons wired once the DOM is ready.
(function () {
  "use strict";
  const KEY = "scriptops-theme";
  const CHOICES = ["system", "light", "dark"];
  const media = window.matchMedia("(prefers-color-scheme: dark)");

  function stored() {
    try {
      const value = window.localStorage.getItem(KEY);
      return CHOICES.includes(value) ? value : "system";
    } catch (err) {
      return "system"; // storage disabled: follow the system
    }
  }

  function apply() {
    const choice = stored();
    const theme = choice === "system" ? (media.matches ? "dark" : "light") : choice;
    document.documentElement.dataset.theme = theme;
    document.documentElement.dataset.themeChoice = choice;
    document.querySelectorAll("[data-theme-switch] [data-theme-value]").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.dataset.themeValue === choice));
    });
    document.dispatchEvent(new CustomEvent("so:theme", { detail: { theme } }));
  }

  function choose(choice) {
    try {
      if (choice === "system") window.localStorage.removeItem(KEY);
      else window.localStorage.setItem(KEY, choice);
    } catch (err) {
      /* storage disabled: the choice lasts for this page only */
    }
    apply();
  }

  apply();
  media.addEventListener("change", apply);
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-theme-switch] [data-theme-value]").forEach((button) => {
      button.addEventListener("click", () => choose(button.dataset.themeValue));
    });
    apply();
  });
})();
