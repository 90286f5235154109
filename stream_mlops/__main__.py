from stream_mlops.cli import main

raise SystemExit(main())
