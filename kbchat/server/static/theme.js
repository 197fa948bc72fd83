// Light or dark: follow the system (default), or the user's choice, remembered in this browser.

const STORAGE_KEY = "kbchat.theme";
export const THEMES = ["system", "light", "dark"];

/** The stored choice: "system", "light" or "dark". */
export function theme() {
  const stored = localStorage.getItem(STORAGE_KEY);
  return THEMES.includes(stored) ? stored : "system";
}

/** Apply and remember a choice; "system" leaves it to prefers-color-scheme. */
export function setTheme(choice) {
  const next = THEMES.includes(choice) ? choice : "system";
  if (next === "system") {
    localStorage.removeItem(STORAGE_KEY);
    delete document.documentElement.dataset.theme;
  } else {
    localStorage.setItem(STORAGE_KEY, next);
    document.documentElement.dataset.theme = next;
  }
}

setTheme(theme());
