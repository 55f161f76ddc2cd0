module ticklake.dev/tools/pause

go 1.22
