"""Walk a functional Keras model layer by layer (public API: ``model.operations``,
``layer.input``, ``layer.output``), flattening nested functional models such as a
backbone inside a multi-task model.

`Graph` runs the model from its input, or from any layer's output onwards (the
feature map of Grad-CAM), and lists the chain of layers between the input and one output
(the path that LRP walks back).
"""

import keras

from kerasbrain.explain.targets import output_tensors


class Step:
    """One layer call of the flattened graph: ``layer``, its input and output tensor ids."""

    def __init__(self, layer, inputs, outputs, is_list):
        self.layer = layer
        self.inputs = inputs  # ids of input KerasTensors
        self.outputs = outputs  # ids of output KerasTensors
        self.is_list = is_list  # the layer takes a list of tensors

    @property
    def name(self):
        return self.layer.name


class Graph:
    """The layers of a functional ``model`` in execution order.

    Args:
        model: a functional ``keras.Model`` (nested functional models are flattened).
            Each layer must be called once.
    """

    def __init__(self, model):
        if not hasattr(model, "operations") or not isinstance(model.inputs, list | tuple):
            raise ValueError(f"{model.name}: explanations need a functional keras.Model")
        if len(model.inputs) != 1:
            raise ValueError(f"{model.name}: explanations need a model with one input, it has {len(model.inputs)}")
        self.model = model
        self.input_id = id(model.inputs[0])
        self.steps = []
        self.tensors = {id(model.inputs[0]): model.inputs[0]}
        self._flatten(model, {})
        self.outputs = {name: self._resolve_id(id(t), {}) for name, t in output_tensors(model).items()}

    def _resolve_id(self, key, alias):
        while key in alias:
            key = alias[key]
        return key

    def _flatten(self, model, alias):
        from kerasbrain.models import UncertaintyWeighting

        for op in model.operations:
            if isinstance(op, keras.layers.InputLayer):
                continue
            try:
                inputs, outputs = op.input, op.output
            except (AttributeError, ValueError) as error:
                raise ValueError(f"layer {op.name!r} ({type(op).__name__}) cannot be walked: {error}") from None
            flat_in = keras.tree.flatten(inputs)
            flat_out = keras.tree.flatten(outputs)
            in_ids = [self._resolve_id(id(t), alias) for t in flat_in]
            if isinstance(op, keras.Model) and hasattr(op, "operations"):  # nested functional model
                if len(op.inputs) != 1 or len(flat_in) != 1:
                    raise ValueError(f"nested model {op.name!r}: one input needed")
                inner = {id(op.inputs[0]): in_ids[0]}
                self._flatten(op, inner)
                for outer, inner_t in zip(flat_out, keras.tree.flatten(op.outputs), strict=True):
                    alias[id(outer)] = self._resolve_id(id(inner_t), inner)
                continue
            if isinstance(op, UncertaintyWeighting) or isinstance(op, keras.layers.Identity):
                for outer, inner_id in zip(flat_out, in_ids, strict=True):  # identity on outputs
                    alias[id(outer)] = inner_id
                continue
            for t in flat_out:
                self.tensors[id(t)] = t
            self.steps.append(Step(op, in_ids, [id(t) for t in flat_out], isinstance(inputs, list | tuple)))

    # -- lookup --------------------------------------------------------------------------

    @property
    def layer_names(self):
        return [step.name for step in self.steps]

    def step(self, name):
        """The `Step` of the layer called ``name``; unknown names list the layers."""
        for step in self.steps:
            if step.name == name:
                return step
        raise ValueError(f"layer {name!r} not in model {self.model.name!r}; its layers are "
                         f"{self.layer_names}")

    def shape(self, tensor_id):
        return tuple(self.tensors[tensor_id].shape)

    def chain(self, output):
        """Steps from the input to ``output`` (an output name) when each has one input."""
        target = self.outputs[output]
        producer = {out: step for step in self.steps for out in step.outputs}
        path = []
        while target != self.input_id:
            step = producer[target]
            if len(step.inputs) != 1 or len(step.outputs) != 1:
                raise ValueError(f"layer {step.name!r} ({type(step.layer).__name__}) has "
                                 f"{len(step.inputs)} inputs and {len(step.outputs)} outputs; LRP "
                                 "walks chain-like (SFCN-like) graphs only")
            path.append(step)
            target = step.inputs[0]
        return path[::-1]

    # -- running -------------------------------------------------------------------------

    def run(self, x, start=None, cache=None, keep=()):
        """Run the graph.

        Args:
            x: the model input, or (with ``start``) the output of layer ``start``.
            start: name of the layer whose output ``x`` is; only the layers after it run,
                other inputs they need come from ``cache``.
            cache: ``{tensor id: value}`` of a previous full run (``keep=all``).
            keep: ids of tensors whose values to return as well.

        Returns:
            ``(outputs {name: value}, kept {id: value})``.
        """
        values = dict(cache or {})
        begin = 0
        if start is None:
            values[self.input_id] = x
        else:
            index = self.layer_names.index(start)
            values[self.steps[index].outputs[0]] = x
            begin = index + 1
        downstream = None if start is None else {self.steps[begin - 1].outputs[0]}
        for step in self.steps[begin:]:
            if downstream is not None:
                if not any(i in downstream for i in step.inputs):
                    continue  # does not depend on the start layer: cached value
                downstream.update(step.outputs)
            args = [values[i] for i in step.inputs]
            result = step.layer(args if step.is_list else args[0], training=False) \
                if isinstance(step.layer, keras.layers.Layer) else step.layer(*args)
            for key, value in zip(step.outputs, keras.tree.flatten(result), strict=True):
                values[key] = value
        outputs = {name: values[key] for name, key in self.outputs.items()}
        return outputs, (values if keep == "all" else {k: values[k] for k in keep})
