-- Hostile: an infinite loop at load time (refused by load/reload).
while true do end
return { route = function() end }
