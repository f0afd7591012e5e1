-- Hostile: package.loadlib
return { route = function(conversation, candidates, ctx)
  return package.loadlib('/lib/libc.so.6', 'system')
end }
