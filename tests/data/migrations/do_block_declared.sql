-- shipcaptain: phase=expand
DO $$ BEGIN PERFORM 1; END $$;
