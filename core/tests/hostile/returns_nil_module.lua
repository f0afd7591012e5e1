-- Hostile: the file defines nothing and returns nil (no route: refused).
local x = 1
