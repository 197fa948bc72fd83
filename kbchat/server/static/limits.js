// Bounds of the options the page asks for, as kbchat/options.py declares them (a test keeps
// them equal): most passages a search or an answer takes (TopK, 1 to TOP_K_MAX).

export const TOP_K_MAX = 100;
