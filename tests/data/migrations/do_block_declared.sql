-- shipcaptain: phase=expand
DO $$ BEGIN PERFORM archive_old_boards(); END $$;
