"""What a run leaves for people: the typed report, console tables, plots, the Perfetto trace, comparisons,
and the safe writing of it all."""
