"""What a schedule costs: MACs counted on a weightless copy of the transformer at the shapes of one observed pipeline
call (:mod:`ecad.cost.counting`, priced by a :class:`ecad.cost.table.CostTable`), and latency measured through the
runtime (:mod:`ecad.cost.latency`)."""
