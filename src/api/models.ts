/**
 * Models: ResNet builders (random or torchvision/timm weights), prediction, saving weights.
 *
 * @module Models
 */
export {
  Model,
  resnet18,
  resnet34,
  resnet50,
  saveWeights,
  smallResnet,
  type BnBranch,
  type ModelOptions,
  type PredictOptions,
  type Prediction,
  type SmallResnetOptions,
  type WeightsReport,
} from '../models.js';
